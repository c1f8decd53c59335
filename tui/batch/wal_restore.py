"""`pgvault --batch wal-restore [flags] SOURCE_URL SERVER_NAME WAL_NAME WAL_DEST`.

barman-cloud-wal-restore's surface for restore_command ('... %f %p'). Exit codes: 0 the
file is at WAL_DEST; 1, quietly, the archive does not have it (PostgreSQL's normal end of
the archive); 2 the cloud could not be reached; 3 bad input; 4 any other failure (a
corrupt archived file, a missing bucket), with a message on stderr. PostgreSQL takes every
code from 1 to 125 for "not available"; `--abort-on-error` exits 255 on failures other than
a missing file instead (bad input and unexpected errors included), which makes PostgreSQL
stop recovery rather than end it early. `--credentials-file` names the 0600 file that
`pgvault restore` writes with the credentials restore_command needs (core.credentials_file).
"""

from __future__ import annotations

import argparse
import logging
import sys

from core.errors import ExitCode, InputError, PgvaultError
from core.postgres.walnames import is_wal_name
from tui.batch.encryption_options import add_unlock, apply_unlock
from tui.batch.main import Context
from tui.batch.options import add_cloud, add_general, destination_from, non_negative_int

log = logging.getLogger("pgvault.wal")

ABORT_RECOVERY = 255


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from core.wal.restore import DEFAULT_SPOOL

    parser.description = (
        "Fetch one WAL file from the archive for restore_command ('... %f %p'). The file "
        "is verified (complete, checksum, header) before it is written to WAL_DEST."
    )
    parser.add_argument(
        "url",
        metavar="SOURCE_URL",
        help="s3://, gs://, azure://, https://ACCOUNT.blob.core.windows.net/ or file://",
    )
    parser.add_argument("server_name", metavar="SERVER_NAME", help="the name of the server")
    parser.add_argument(
        "wal_name", metavar="WAL_NAME", help="the value of the '%%f' keyword (restore_command)"
    )
    parser.add_argument(
        "wal_dest", metavar="WAL_DEST", help="the value of the '%%p' keyword (restore_command)"
    )
    add_general(parser)
    add_cloud(parser)
    parser.add_argument(
        "--no-partial", action="store_true", help="do not serve a segment from its .partial file"
    )
    parser.add_argument(
        "-p",
        "--parallel",
        type=non_negative_int,
        default=0,
        help="fetch the requested file and the next PARALLEL-1 segments at once "
        "(default: 0, disabled)",
    )
    parser.add_argument(
        "--spool-dir",
        default=DEFAULT_SPOOL,
        help=f"where prefetched segments wait (default: {DEFAULT_SPOOL})",
    )
    parser.add_argument(
        "--credentials-file",
        metavar="PATH",
        help="a 0600 JSON file of credentials (written by `pgvault --batch restore`): its URL "
        "parameters are added to SOURCE_URL and its variables to the environment",
    )
    add_unlock(parser)
    parser.add_argument(
        "--abort-on-error",
        action="store_true",
        help=f"exit {ABORT_RECOVERY} on any failure but a missing file, so that PostgreSQL "
        "stops recovery (FATAL) instead of taking the failure for the end of the archive",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    try:
        return _run(args)
    except PgvaultError as exc:
        if not args.abort_on_error:
            raise
        print(f"pgvault wal-restore: error: {exc}", file=sys.stderr)
        return ABORT_RECOVERY
    except Exception as exc:
        if not args.abort_on_error:
            raise
        from core.secrets import redact

        log.debug("unexpected error", exc_info=True)
        print(
            f"pgvault wal-restore: unexpected error: {redact(f'{type(exc).__name__}: {exc}')}",
            file=sys.stderr,
        )
        return ABORT_RECOVERY


def _run(args: argparse.Namespace) -> int:
    from core.wal.errors import WalNotFound
    from core.wal.restore import FetchOptions, restore_wal

    if not args.test and not is_wal_name(args.wal_name):
        raise InputError(f"{args.wal_name} is an invalid name for a WAL file")
    url = args.url
    if args.credentials_file:
        from core.credentials_file import apply_credentials_file

        url = apply_credentials_file(args.credentials_file, url)
    apply_unlock(args)
    where = destination_from(args, url, jobs=max(1, args.parallel))
    if args.test:
        where.check()
        return ExitCode.OK
    options = FetchOptions(
        no_partial=args.no_partial, parallel=args.parallel, spool_dir=args.spool_dir
    )
    try:
        restore_wal(
            where.location, where.config, args.server_name, options, args.wal_name, args.wal_dest
        )
    except WalNotFound as exc:
        log.info("%s", exc)  # PostgreSQL asks past the end of the archive: no noise
        return ExitCode.FAILED
    return ExitCode.OK
