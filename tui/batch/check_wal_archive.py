"""`pgvault --batch check-wal-archive [flags] DESTINATION_URL SERVER_NAME`.

Without --gaps, barman-cloud-check-wal-archive's check: exit 0 when a new server may archive
into this server name (an empty archive, or with --timeline N nothing on timeline N or
later), 1 when it must not. Unlike barman-cloud it never creates the bucket. With --gaps,
the gap check: every backup's WAL is present, and no hole follows it.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from core.errors import ExitCode, InputError, PgvaultError
from tui.batch.catalog_options import add_format
from tui.batch.main import Context
from tui.batch.options import add_cloud, add_general, destination_from, positive_int, print_json

if TYPE_CHECKING:
    from core.wal.check import BackupCoverage

#: missing segments named after a backup (the count says how many more)
SHOWN = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Check that the WAL archive of SERVER_NAME can be used by a new server (barman-cloud's "
        "check), or with --gaps that every backup has every WAL segment it needs."
    )
    parser.add_argument(
        "url",
        metavar="DESTINATION_URL",
        help="s3://, gs://, azure://, https://ACCOUNT.blob.core.windows.net/ or file://",
    )
    parser.add_argument("server_name", metavar="SERVER_NAME", help="the name of the server")
    add_general(parser)
    add_cloud(parser)
    parser.add_argument(
        "--timeline",
        type=positive_int,
        help="the earliest timeline whose WAL files should cause the check to fail",
    )
    parser.add_argument(
        "--gaps",
        action="store_true",
        help="check instead that every backup has every segment from its begin to its end "
        "WAL, and that no segment is missing after it (point-in-time recovery)",
    )
    add_format(parser)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from core.catalog.reader import Catalog
    from core.wal.check import archived_wals, check_backups, read_histories
    from core.wal.errors import ArchiveGaps

    if args.gaps and args.timeline is not None:
        raise InputError("--gaps and --timeline answer different questions: use one")
    where = destination_from(args)
    where.check()  # connectivity and the bucket: 2 or 1, never one created
    if args.test:
        return ExitCode.OK
    with where.open() as store:
        archived = archived_wals(store, args.server_name)
        if not args.gaps:
            return _usable(args, archived)
        backups = Catalog(store, args.server_name).backups()
        coverage = check_backups(backups, archived, read_histories(store, archived))
    if args.format == "json":
        print_json(_report(args, len(archived), coverage=coverage))
    else:
        _print_coverage(args.server_name, coverage)
    failed = [c for c in coverage if not c.ok]
    if failed:
        raise ArchiveGaps(
            f"{len(failed)} of {len(coverage)} backup(s) lack WAL segments (listed above)"
        )
    return ExitCode.OK


def _usable(args: argparse.Namespace, archived: Collection[str]) -> int:
    """barman-cloud's check; with --format json its report, also when it fails (exit 1)."""
    from core.wal.check import check_archive_usable

    count = len(archived)
    try:
        check_archive_usable(archived, args.timeline)
    except PgvaultError as exc:
        if args.format == "json":
            print_json(_report(args, count, error=str(exc)))
        raise
    if args.format == "json":
        print_json(_report(args, count))
    return ExitCode.OK


def _report(
    args: argparse.Namespace,
    wal_files: int,
    coverage: Sequence[BackupCoverage] = (),
    error: str | None = None,
) -> dict[str, Any]:
    """The --format json document: one shape for both checks (README, check-wal-archive)."""
    return {
        "server": args.server_name,
        "check": "gaps" if args.gaps else "usable",
        "ok": error is None and all(c.ok for c in coverage),
        "error": error,
        "timeline": args.timeline,
        "wal_files": wal_files,
        "backups": [
            {
                "backup_id": c.backup_id,
                "timeline": c.timeline,
                "begin_wal": c.begin_wal,
                "end_wal": c.end_wal,
                "ok": c.ok,
                "missing": list(c.missing),
                "gaps_after": list(c.gaps_after),
                "recoverable_until": c.recoverable_until,
            }
            for c in coverage
        ],
    }


def _print_coverage(server: str, coverage: Sequence[BackupCoverage]) -> None:
    if not coverage:
        print(f"no completed backups of {server}: nothing to check")
        return
    for item in coverage:
        head = f"backup {item.backup_id} ({item.begin_wal}..{item.end_wal})"
        if item.missing:
            print(
                f"{head}: MISSING {len(item.missing)} segment(s) it needs: "
                f"{', '.join(item.missing)}"
            )
            continue
        line = f"{head}: all segments present"
        if item.gaps_after:
            more = ", ..." if len(item.gaps_after) > SHOWN else ""
            line += (
                f"; WAL after it has {len(item.gaps_after)} missing segment(s) "
                f"({', '.join(item.gaps_after[:SHOWN])}{more})"
                f"; recovery stops at {item.recoverable_until}"
            )
        elif item.recoverable_until:
            line += f"; WAL continuous to {item.recoverable_until}"
        print(line)
