"""`pgvault --batch backup [flags] DESTINATION_URL SERVER_NAME`: barman-cloud-backup's surface."""

from __future__ import annotations

import argparse
import os
import sys

from core.errors import ExitCode, InputError
from tui.batch.encryption_options import add_unlock, apply_unlock
from tui.batch.jobrun import add_job_options, run_as_job
from tui.batch.logical import add_backup_arguments
from tui.batch.logical import run_backup as run_logical
from tui.batch.main import Context
from tui.batch.options import (
    Destination,
    add_cloud,
    add_general,
    add_tags,
    destination_from,
    non_negative_int,
    positive_int,
    size,
    tags_from,
)
from tui.batch.snapshot_options import (
    add_snapshot_arguments,
    snapshot_source,
    validate_snapshot_flags,
)

COMPRESSIONS = (
    (("-z", "--gzip"), "gzip"),
    (("-j", "--bzip2"), "bzip2"),
    (("--snappy",), "snappy"),
    (("--lz4",), "lz4"),
    (("--zstd",), "zstd"),
)
# barman-cloud-restore 3.19.1 (the newest release) skips .tar.zst archives.
_COMPRESSION_HELP = {
    "bzip2": "bzip2-compress the backup (on every core, one ordinary bzip2 stream)",
    "snappy": "snappy-compress the backup (on every core)",
    "zstd": "zstd-compress the backup; barman-cloud-restore (3.19.1) cannot restore it "
    "(it reads plain, gzip, bzip2, snappy and lz4 backups)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Take a hot physical backup of a local PostgreSQL cluster and stream it to a cloud "
        "destination or a local directory, in barman-cloud's layout."
    )
    parser.add_argument(
        "url",
        metavar="DESTINATION_URL",
        help="s3://, gs://, azure://, https://ACCOUNT.blob.core.windows.net/ "
        "or file:// destination",
    )
    parser.add_argument("server_name", metavar="SERVER_NAME", help="the name of the server")
    add_general(parser, short_help=False)  # -h is --host, as in barman-cloud-backup
    add_cloud(parser, writes=True)
    compression = parser.add_mutually_exclusive_group()
    for flags, name in COMPRESSIONS:
        compression.add_argument(
            *flags,
            dest="compression",
            action="store_const",
            const=name,
            help=_COMPRESSION_HELP.get(name, f"{name}-compress the backup"),
        )
    _add_connection(parser)
    _add_upload(parser)
    _add_wal(parser)
    _add_kind(parser)
    add_tags(parser, "tags", "files")
    add_job_options(parser)
    add_unlock(parser)  # an incremental of an encrypted server reads its parent's manifest
    add_backup_arguments(parser)
    add_snapshot_arguments(parser)


def _add_connection(parser: argparse.ArgumentParser) -> None:
    pg = parser.add_argument_group("PostgreSQL connection")
    pg.add_argument("-h", "--host", help="host or Unix socket (default: libpq settings)")
    pg.add_argument("-p", "--port", help="port (default: libpq settings)")
    pg.add_argument("-U", "--user", help="user name (default: libpq settings)")
    pg.add_argument(
        "-d",
        "--dbname",
        default="postgres",
        help='database name or conninfo string (default: "postgres")',
    )


def _add_upload(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--name", help="a name to reference this backup by")
    parser.add_argument(
        "-J",
        "--jobs",
        type=positive_int,
        default=2,
        help="number of parts uploaded in parallel (default: 2)",
    )
    parser.add_argument(
        "-S",
        "--max-archive-size",
        type=size,
        default=size("100GB"),
        help="maximum size of an archive when uploading (default: 100GB)",
    )
    parser.add_argument(
        "--immediate-checkpoint",
        action="store_true",
        help="force the initial checkpoint to be done as quickly as possible (without it "
        "PostgreSQL spreads the checkpoint over checkpoint_completion_target x "
        "checkpoint_timeout, 4.5 minutes by default)",
    )
    parser.add_argument(
        "--min-chunk-size",
        type=size,
        help="minimum size of an individual chunk when uploading "
        "(default: 5MB for aws-s3, 64KB for azure-blob-storage, 256KiB for GCS)",
    )
    parser.add_argument(
        "--max-bandwidth",
        type=size,
        help="the maximum bytes per second uploaded (default: no limit)",
    )
    parser.add_argument(
        "--keepalive-interval",
        type=non_negative_int,
        default=60,
        help="seconds between keepalive queries on the backup session (default: 60, 0 disables)",
    )
    parser.add_argument(
        "--checksum-algorithm",
        choices=("crc32c", "sha256"),
        default="crc32c",
        help="per-file checksum in the manifest (default: crc32c)",
    )


def _add_wal(parser: argparse.ArgumentParser) -> None:
    """A backup is DONE only once its WAL is in the destination (core.backup.wal_check)."""
    parser.add_argument(
        "--wal-timeout",
        type=positive_int,
        default=60,
        metavar="SECONDS",
        help="how long the backup waits for its WAL to appear in the destination under "
        "SERVER_NAME once PostgreSQL archived it, before it fails (default: 60)",
    )
    parser.add_argument(
        "--no-wal-check",
        dest="wal_check",
        action="store_false",
        help="do not require the backup's WAL in the destination (you keep the WAL "
        "elsewhere): the backup is DONE without it, and restoring it needs that WAL",
    )


def _add_kind(parser: argparse.ArgumentParser) -> None:
    kind = parser.add_argument_group("Incremental backups").add_mutually_exclusive_group()
    kind.add_argument(
        "--incremental",
        action="store_true",
        help="store only what changed since the newest DONE backup of the server's latest chain",
    )
    kind.add_argument(
        "--incremental-from",
        metavar="BACKUP_ID",
        help="store only what changed since this backup (an incremental of it)",
    )
    kind.add_argument(
        "--differential",
        action="store_true",
        help="store only what changed since the latest chain's full backup",
    )


def _kind(args: argparse.Namespace) -> str | None:
    if args.differential:
        return "differential"
    if args.incremental or args.incremental_from:
        return "incremental"
    return None


def run(args: argparse.Namespace, ctx: Context) -> int:
    snapshot = snapshot_source(args)
    if snapshot is not None:
        validate_snapshot_flags(args)
    if os.environ.get("BARMAN_HOOK"):  # Barman's post_backup_script: upload its backup
        from tui.batch.barman_hook import run_hook

        return run_hook(args, ctx)
    where = destination_from(
        args,
        jobs=args.jobs,
        min_chunk_size=args.min_chunk_size,
        max_bandwidth=args.max_bandwidth,
    )
    if args.database or args.table or args.all_databases:
        apply_unlock(args)
        _check_backup_key(args, where, args.server_name)
        return run_logical(args, ctx, where)
    _refuse_logical(args)
    from core.backup.request import make_backup_request
    from core.postgres.connection import ConnectionParams

    request = make_backup_request(
        where.location,
        args.server_name,
        store_config=where.config,
        connection=ConnectionParams(
            host=args.host, port=args.port, user=args.user, dbname=args.dbname
        ),
        compression=args.compression,
        name=args.name,
        max_archive_size=args.max_archive_size,
        immediate_checkpoint=args.immediate_checkpoint,
        keepalive_interval=float(args.keepalive_interval),
        checksum_algorithm=args.checksum_algorithm,
        tags=tags_from(args),
        incremental=_kind(args),
        incremental_from=args.incremental_from,
        wal_check=args.wal_check,
        wal_timeout=args.wal_timeout,
        snapshot=snapshot,
    )
    if args.test:  # after every flag is checked: -t with a bad flag is exit 3, as without
        where.check()
        return ExitCode.OK
    apply_unlock(args)
    _check_backup_key(args, where, args.server_name)
    from core.backup.job import BACKUP
    from core.jobs.results import BackupJobResult

    job = run_as_job(args, ctx, BACKUP, request)
    if job is not None:  # in the foreground: the backup ID, as barman-cloud-backup prints it
        result = job.result_as(BackupJobResult)
        print(result.backup_id)
        if args.verbose:
            print(result.summary, file=sys.stderr)
    return ExitCode.OK


def _refuse_logical(args: argparse.Namespace) -> None:
    used = [
        flag
        for flag, value in (
            ("--staging-dir", args.staging_dir),
            ("--pg-bindir", args.pg_bindir),
            ("--staging-limit", args.staging_limit is not None),
        )
        if value
    ]
    if used:
        raise InputError(f"{', '.join(used)}: only for a logical backup (--database NAME)")


def _check_backup_key(args: argparse.Namespace, where: Destination, server: str) -> None:
    """A key file or identity given to a backup is checked, not ignored: a backup is
    encrypted by the server's key file (`keys init`), never by a passphrase alone, and a key
    that does not open that file is as wrong here as in a restore (one scrypt, kept for the
    job: an incremental reads its parent with it)."""
    flag = (
        "--encryption-passphrase-file"
        if getattr(args, "encryption_passphrase_file", None)
        else "--identity-file"
        if getattr(args, "identity_file", None)
        else None
    )
    if flag is None:
        return
    from core.encryption import keyfile_key, load_keyfile, unlocked_keys

    with where.open() as store:
        if load_keyfile(store, server) is None:
            raise InputError(
                f"server {server} has no key file ({keyfile_key(server)}), so {flag} would "
                "encrypt nothing: run `pgvault --batch keys init` first to encrypt its backups "
                "and WAL, or leave the flag out"
            )
        unlocked_keys(store, server)
