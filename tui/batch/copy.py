"""`pgvault --batch copy SOURCE_URL SERVER_NAME --to TARGET_URL [BACKUP ...|--all] [--with-wal]`
and `pgvault --batch copy SOURCE_URL SERVER_NAME --refresh`.

Copies backups (physical and logical, with the parents an incremental needs and the WAL
from each backup's begin to its end; --with-wal or --all: the whole WAL archive from the
oldest copied backup on) to another destination, any provider, as a `copy` job. Every
object is read back on the target and compared (size and SHA-256); a rerun resumes.
The source's connection flags apply to the source; the target's credentials and endpoint
come from its URL's query string or the environment. Exit codes: 0 copied; 1 failed (a
conflicting object on the target included); 2 a cloud could not be reached; 3 bad input.
--refresh checks each copy the source's record lists at its target (core.copy.refresh) and
rewrites the record; 2 when a target could not be checked (its entries are kept).
"""

from __future__ import annotations

import argparse

from core.errors import ExitCode, InputError
from core.urls import CLOUD_PROVIDER_CHOICES
from tui.batch.catalog_options import (
    add_format,
    add_source,
    connectivity_test,
    opened,
    source,
)
from tui.batch.jobrun import add_job_options, run_as_job
from tui.batch.main import Context
from tui.batch.options import backup_reference, check_store, print_json, size

#: BACKUP ids may come after --to, as the README's synopsis writes them (tui.batch.main)
INTERMIXED = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source(
        parser,
        "Copy backups and the WAL they need to a second destination, verifying every object.",
    )
    parser.add_argument(
        "backups",
        nargs="*",
        type=backup_reference,
        metavar="BACKUP",
        help="backup IDs (logical ones too), names, latest or oldest",
    )
    parser.add_argument(
        "--to",
        metavar="TARGET_URL",
        help="the destination the copies go to (credentials in its query string or the "
        "environment, as for any destination URL)",
    )
    parser.add_argument(
        "--to-cloud-provider",
        choices=CLOUD_PROVIDER_CHOICES,
        default=None,
        help="the target's provider when its URL does not say (webdav for http(s)://)",
    )
    parser.add_argument("--all", action="store_true", help="every finished backup, all the WAL")
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="check each recorded copy at its target (still there, complete) and rewrite the "
        "source's record of copies; no backup is copied",
    )
    parser.add_argument(
        "--with-wal",
        action="store_true",
        help="copy every WAL file from the oldest copied backup on (point-in-time recovery "
        "on the target), not only what each backup needs to be consistent",
    )
    parser.add_argument(
        "--max-bandwidth",
        type=size,
        help="the maximum bytes per second written to the target (default: no limit)",
    )
    add_format(parser)
    add_job_options(parser)


#: what --refresh cannot be combined with: (attribute, flag as the operator types it)
COPY_ONLY = (
    ("to", "--to"),
    ("backups", "backup IDs"),
    ("all", "--all"),
    ("with_wal", "--with-wal"),
    ("to_cloud_provider", "--to-cloud-provider"),
    ("max_bandwidth", "--max-bandwidth"),
    ("detach", "--detach"),
    ("test", "-t"),
)


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.refresh:
        return _refresh(args)
    if args.to is None:
        raise InputError("name the destination the copies go to with --to (or give --refresh)")
    return _copy(args, ctx)


def _refresh(args: argparse.Namespace) -> int:
    from core.copy.refresh import refresh_copies

    given = [flag for attribute, flag in COPY_ONLY if getattr(args, attribute)]
    if given:
        raise InputError(f"--refresh checks the recorded copies: it takes no {', '.join(given)}")
    with opened(args) as store:
        result = refresh_copies(store, args.server_name)
    if args.format == "json":
        print_json(result.to_json())
    elif not args.quiet:
        for check in result.checks:
            print(f"{check.backup_id}  {check.url}  {check.state}: {check.detail}")
        print(result.summary())
    return ExitCode.CONNECTION if result.unchecked else ExitCode.OK


def _copy(args: argparse.Namespace, ctx: Context) -> int:
    from core.copy.job import COPY, CopyRequest, validate_request
    from core.jobs.results import CopyJobResult
    from core.storage import StoreConfig
    from core.urls import parse_location

    where = source(args)
    target = parse_location(args.to, args.to_cloud_provider)
    request = CopyRequest(
        location=where.location,
        server=args.server_name,
        target=target,
        backups=tuple(args.backups),
        everything=args.all,
        whole_wal=args.with_wal,
        store_config=where.config,
        target_config=StoreConfig(
            read_timeout=where.config.read_timeout, max_bandwidth=args.max_bandwidth
        ),
    )
    validate_request(request)
    if args.test:
        connectivity_test(args)
        check_store(target, request.target_config)
        return ExitCode.OK
    job = run_as_job(args, ctx, COPY, request)
    if job is None:  # detached: the job id is printed
        return ExitCode.OK
    result = job.result_as(CopyJobResult)
    if args.format == "json":
        print_json(result.to_json())
    elif not args.quiet:
        print(result.summary)
    return ExitCode.OK
