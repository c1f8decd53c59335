"""`pgvault --batch verify [flags] SOURCE_URL SERVER_NAME BACKUP [--restore-drill]`.

Reads every object of the backup and checks it against pgvault.json and backup_manifest,
and checks the WAL it needs is archived (core.verify); `--restore-drill` then restores it
into a temporary directory, starts PostgreSQL there and runs pg_amcheck (core.drill). Runs
as a `verify` job (`--detach` to run it in the background). Exit codes: 0 verified; 1 a
problem (each one named by its object), or the drill failed; 2 the cloud could not be
reached; 3 bad input.
"""

from __future__ import annotations

import argparse
import os

from core.errors import ExitCode
from tui.batch.catalog_options import add_format, add_source, connectivity_test, source
from tui.batch.encryption_options import add_unlock, apply_unlock
from tui.batch.jobrun import add_job_options, run_as_job
from tui.batch.main import Context
from tui.batch.options import backup_reference, positive_int, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source(
        parser,
        "Read every object of a backup, check every checksum against its manifests and "
        "that the WAL it needs is archived; optionally restore it and start PostgreSQL on it.",
    )
    parser.add_argument(
        "backup_id",
        type=backup_reference,
        metavar="BACKUP",
        help="a backup ID (a logical backup's too), a backup name, or latest/last, oldest/first",
    )
    parser.add_argument(
        "-J",
        "--jobs",
        type=positive_int,
        default=4,
        help="archives read at once, and ranged reads in flight during the drill's restore "
        "(default: 4)",
    )
    drill = parser.add_argument_group("Restore drill")
    drill.add_argument(
        "--restore-drill",
        action="store_true",
        help="after verifying, restore into a temporary directory, start PostgreSQL there on "
        "a free port, wait for consistency, run pg_amcheck, report and clean up",
    )
    drill.add_argument(
        "--pgvault-command",
        metavar="PATH",
        help="the pgvault executable restore_command runs, as the data directory's owner "
        "(default: this pgvault)",
    )
    drill.add_argument(
        "--pg-bindir",
        metavar="DIR",
        help="PostgreSQL's bin directory (default: found from the backup's major version)",
    )
    drill.add_argument(
        "--drill-dir",
        metavar="DIR",
        help="where the temporary directory is made (default: the system's temp directory)",
    )
    drill.add_argument("--no-amcheck", action="store_true", help="do not run pg_amcheck")
    drill.add_argument(
        "--timeout",
        type=positive_int,
        default=600,
        help="seconds PostgreSQL may take to start and reach consistency (default: 600)",
    )
    add_format(parser)
    add_job_options(parser)
    add_unlock(parser)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from core.jobs.results import VerifyJobResult
    from core.verify import VerifyRequest, validate_request
    from core.verify_job import VERIFY
    from tui.job_results import verify_lines

    where = source(args, jobs=args.jobs)
    pgvault_command = args.pgvault_command
    if args.restore_drill and pgvault_command is None:
        from core.restore import default_pgvault_command

        pgvault_command = default_pgvault_command()
    request = VerifyRequest(
        location=where.location,
        server=args.server_name,
        backup=args.backup_id,
        store_config=where.config,
        restore_drill=args.restore_drill,
        pgvault_command=pgvault_command,
        # Absolute paths: a detached job runs in another process.
        pg_bindir=os.path.abspath(args.pg_bindir) if args.pg_bindir else None,
        work_dir=os.path.abspath(args.drill_dir) if args.drill_dir else None,
        amcheck=not args.no_amcheck,
        drill_timeout=float(args.timeout),
    )
    validate_request(request)  # with -t too: a flag that cannot apply is exit 3 either way
    if args.test:
        connectivity_test(args)
        return ExitCode.OK
    apply_unlock(args)
    job = run_as_job(args, ctx, VERIFY, request)
    if job is None:  # detached: the job id is printed
        return ExitCode.OK
    result = job.result_as(VerifyJobResult)
    if args.format == "json":
        print_json(result.to_json())
    elif not args.quiet:
        print("\n".join(verify_lines(result)))
    return ExitCode.OK
