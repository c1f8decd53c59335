"""`pgvault --batch backup-delete [flags] SOURCE_URL SERVER_NAME (-b BACKUP | -r POLICY)`.

barman-cloud-backup-delete's flags (`-b/--backup-id`, `-r/--retention-policy`,
`-m/--minimum-redundancy`, `--dry-run`, `--batch-size`, `--check-object-lock` on S3), plus
pgvault's `--as-of` (the moment a RECOVERY WINDOW is computed from), `--force` (a STARTED
backup whose process cannot be proven gone), `--chain` (the backup and every incremental
built on it) and `--detach`. Runs as a `delete` job.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from core.errors import ExitCode, InputError
from tui.batch.catalog_options import add_format, add_source, connectivity_test, source
from tui.batch.jobrun import add_job_options, run_as_job
from tui.batch.main import Context
from tui.batch.options import backup_reference, non_negative_int, positive_int, print_json

if TYPE_CHECKING:
    from core.logical.catalog import LogicalDeletion


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source(
        parser,
        "Delete one backup, or every backup a retention policy no longer needs (and FAILED "
        "backups older than the newest DONE one), then the WAL no backup needs any more.",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "-b",
        "--backup-id",
        type=backup_reference,
        metavar="BACKUP",
        help="the backup to delete: an ID, a name, or latest/oldest/last-failed",
    )
    what.add_argument(
        "-r",
        "--retention-policy",
        metavar="POLICY",
        help="delete what this policy no longer needs: REDUNDANCY n | "
        "RECOVERY WINDOW OF n {DAYS | WEEKS | MONTHS}",
    )
    parser.add_argument(
        "-m",
        "--minimum-redundancy",
        type=non_negative_int,
        default=0,
        help="the minimum number of DONE backups that must remain (default: 0)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be deleted, delete nothing",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        help="objects per delete request (default and maximum: 1000 for S3 and local "
        "directories, 256 for Azure, 100 for GCS)",
    )
    parser.add_argument(
        "--as-of",
        metavar="TIME",
        help="compute a RECOVERY WINDOW as of this ISO 8601 time instead of now (to preview "
        "with --dry-run what a later run deletes)",
    )
    _add_refusal_options(parser)
    parser.add_argument("--logical", action="store_true", help="-b names a logical backup")
    add_format(parser)
    add_job_options(parser)


def _add_refusal_options(parser: argparse.ArgumentParser) -> None:
    """What -b refuses without being told: a STARTED backup, a parent, a locked object."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="with -b: delete a STARTED backup even though pgvault cannot prove its process "
        "has ended (a backup interrupted on another host, or written by barman-cloud)",
    )
    parser.add_argument(
        "--chain",
        action="store_true",
        help="with -b: also delete every incremental built on the backup, newest first "
        "(without it, deleting a backup others build on is refused)",
    )
    parser.add_argument(
        "--check-object-lock",
        action="store_true",
        help="S3 only: first check each object to delete for an Object Lock retention or "
        "legal hold; a locked one refuses the run (exit 1) and nothing is deleted",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from core.logical.layout import is_logical_id

    if args.logical or is_logical_id(args.backup_id):
        if args.check_object_lock or args.chain:
            flag = "--check-object-lock" if args.check_object_lock else "--chain"
            raise InputError(f"{flag} applies to physical backups only")
        if args.test:
            connectivity_test(args)
            return ExitCode.OK
        return _delete_logical(args)
    from core.catalog.delete import DeleteRequest, validate_request
    from core.catalog.delete_job import DELETE
    from core.jobs.results import DeleteJobResult
    from tui.job_results import delete_lines

    where = source(args)
    request = DeleteRequest(
        location=where.location,
        server=args.server_name,
        store_config=where.config,
        backup=args.backup_id,
        policy=args.retention_policy,
        minimum_redundancy=args.minimum_redundancy,
        dry_run=args.dry_run,
        batch_size=args.batch_size,
        now=args.as_of,
        force=args.force,
        check_object_lock=args.check_object_lock,
        chain=args.chain,
    )
    validate_request(request)  # with -t too: a bad policy is exit 3 either way
    if args.test:
        connectivity_test(args)
        return ExitCode.OK
    job = run_as_job(args, ctx, DELETE, request)
    if job is None:  # detached: the job id is printed
        return ExitCode.OK
    result = job.result_as(DeleteJobResult)
    if args.format == "json":
        print_json(result.to_json())
    elif not args.quiet:
        print("\n".join(delete_lines(result, verbose=args.verbose > 0)))
    return ExitCode.OK


def _delete_logical(args: argparse.Namespace) -> int:
    """A logical backup: its own series, deleted alone (no WAL, no retention)."""
    if args.minimum_redundancy or args.as_of or args.retention_policy:
        raise InputError("-r, -m and --as-of apply to physical backups")
    from core.logical.catalog import delete_logical, plan_delete_logical
    from core.units import format_size

    with source(args).open() as store:
        if args.batch_size:
            store.delete_batch = min(args.batch_size, type(store).delete_batch)
        if args.dry_run:
            plan = plan_delete_logical(store, args.server_name, args.backup_id, args.force)
            if args.format == "json":
                print_json(_logical_json(plan, None, True))
            else:
                size = format_size(plan.size) + _uploads(plan.uploads, "to abort")
                print(f"would delete logical backup {plan.backup_id} ({size})")
            return ExitCode.OK
        # --force: also the objects a killed logical backup left without its logical.json
        gone = delete_logical(store, args.server_name, args.backup_id, unfinished=args.force)
    if args.format == "json":
        print_json(_logical_json(gone, gone.objects, False))
    elif not args.quiet:
        print(
            f"deleted logical backup {gone.backup_id}: {gone.objects} objects, "
            f"{format_size(gone.size)}{_uploads(gone.uploads, 'aborted')}"
        )
    return ExitCode.OK


def _uploads(count: int, verb: str) -> str:
    """What a killed backup left unfinished, when there is any: ', N unfinished uploads VERB'."""
    return f", {count} unfinished uploads {verb}" if count else ""


def _logical_json(
    deletion: LogicalDeletion, objects: int | None, dry_run: bool
) -> dict[str, object]:
    """The JSON shape of a logical backup's deletion (README: backup-delete --format json)."""
    return {
        "kind": "logical",
        "backup_id": deletion.backup_id,
        "dry_run": dry_run,
        "objects": objects,
        "bytes": deletion.size,
        "unfinished_uploads": deletion.uploads,
    }
