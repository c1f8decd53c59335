"""`pgvault --batch backup-rehydrate [flags] SOURCE_URL SERVER_NAME BACKUP [--poll SECONDS]`.

Brings a backup the agent moved to the archive tier (and the chain it builds on) back to
the normal tier, as a `rehydrate` job that polls until every object is readable (S3 takes
hours: `--detach` runs it in the background). Exit codes: 0 online again (or never
archived); 1 failed; 2 the cloud could not be reached; 3 bad input.
"""

from __future__ import annotations

import argparse

from core.errors import ExitCode
from tui.batch.catalog_options import add_format, add_source, connectivity_test, source
from tui.batch.jobrun import add_job_options, run_as_job
from tui.batch.main import Context
from tui.batch.options import backup_reference, print_json


def add_poll(parser: argparse.ArgumentParser, flag: str) -> None:
    """The poll interval flag (shared with restore --rehydrate)."""
    from core.catalog.rehydrate import DEFAULT_POLL

    parser.add_argument(
        flag,
        type=_seconds,
        default=DEFAULT_POLL,
        metavar="SECONDS",
        help=f"seconds between two checks of objects still rehydrating (default: {DEFAULT_POLL:g})",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not 0 < value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"the poll interval must be more than 0 seconds: {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source(
        parser,
        "Bring an archived backup (and the backups it builds on) back to the normal tier, "
        "waiting until every object is readable.",
    )
    parser.add_argument(
        "backup_id",
        type=backup_reference,
        metavar="BACKUP",
        help="a backup ID, a backup name, or latest/last, oldest/first",
    )
    add_poll(parser, "--poll")
    add_format(parser)
    add_job_options(parser)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from core.catalog.rehydrate import REHYDRATE, RehydrateRequest, validate_request
    from core.jobs.results import RehydrateJobResult

    where = source(args)
    request = RehydrateRequest(
        location=where.location,
        server=args.server_name,
        backup=args.backup_id,
        store_config=where.config,
        poll_seconds=args.poll,
    )
    validate_request(request)
    if args.test:
        connectivity_test(args)
        return ExitCode.OK
    job = run_as_job(args, ctx, REHYDRATE, request)
    if job is None:  # detached: the job id is printed
        return ExitCode.OK
    result = job.result_as(RehydrateJobResult)
    if args.format == "json":
        print_json(result.to_json())
    elif not args.quiet:
        print(result.summary)
    return ExitCode.OK
