"""`pgvault --batch check-wal-archive [flags] DESTINATION_URL SERVER_NAME`.

Without --gaps, barman-cloud-check-wal-archive's check: exit 0 when a new server may archive
into this server name (an empty archive, or with --timeline N nothing on timeline N or
later), 1 when it must not. Unlike barman-cloud it never creates the bucket. With --gaps,
the gap check: every backup's WAL is present, and no hole follows it; each gap is listed
with the backups it cuts (a server with neither WAL nor backups there is exit 1: a
misspelt name must not pass a monitoring check). With --repair, a `wal-repair` job first
archives again the missing segments the server still holds in its pg_wal
(core.wal.repair); what it cannot find is reported as a lost recovery range (exit 1).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from core.errors import ExitCode, InputError, OperationFailed, PgvaultError
from tui.batch.catalog_options import add_format
from tui.batch.jobrun import add_job_options
from tui.batch.main import Context
from tui.batch.options import (
    Destination,
    add_cloud,
    add_general,
    destination_from,
    positive_int,
    print_json,
    tcp_port,
)

if TYPE_CHECKING:
    from core.jobs.results import WalRepairJobResult
    from core.wal.check import BackupCoverage
    from core.wal.gaps import WalGap

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
    add_cloud(parser, writes=True)
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
    _add_repair(parser)
    add_format(parser)
    add_job_options(parser)


def _add_repair(parser: argparse.ArgumentParser) -> None:
    repair = parser.add_argument_group(
        "Repair (--repair): archive again the missing segments the server still holds"
    )
    repair.add_argument(
        "--repair",
        action="store_true",
        help="run the gap check after a wal-repair job that uploads every missing segment "
        "found in the server's pg_wal, as wal-archive would (implies --gaps)",
    )
    repair.add_argument(
        "--pgdata", metavar="DIR", help="the server's data directory, read on this host"
    )
    # Long flags only: -h is help and -p is taken here, as in barman-cloud's checks.
    repair.add_argument("--host", help="or connect: host or Unix socket (default: libpq)")
    repair.add_argument("--port", type=tcp_port, help="the server's port (default: libpq)")
    repair.add_argument("--user", help="user name (default: libpq settings)")
    repair.add_argument("--dbname", help="database name or conninfo string (default: postgres)")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from core.catalog.reader import Catalog
    from core.postgres.walnames import DEFAULT_SEGMENT_SIZE
    from core.wal.check import archived_wals, check_backups, read_histories
    from core.wal.errors import ArchiveGaps
    from core.wal.gaps import archive_gaps

    if (args.gaps or args.repair) and args.timeline is not None:
        given = "--repair" if args.repair else "--gaps"
        raise InputError(f"{given} and --timeline answer different questions: use one")
    args.gaps = args.gaps or args.repair
    _refuse_repair_flags(args)
    where = destination_from(args)
    repaired = _repair(args, ctx, where) if args.repair else None
    if args.repair and repaired is None:
        return ExitCode.OK  # detached: the job id is printed
    if not args.repair:
        where.check()  # connectivity and the bucket: 2 or 1, never one created
        if args.test:
            return ExitCode.OK
    with where.open() as store:
        archived = archived_wals(store, args.server_name)
        if not args.gaps:
            return _usable(args, archived)
        backups = Catalog(store, args.server_name).backups()
        if not archived and not backups:
            # A monitoring check of a misspelt server would pass for ever.
            raise OperationFailed(
                f"nothing is archived for server {args.server_name} in "
                f"{where.location.display()}: no WAL and no backup (is the server name right?)"
            )
        coverage = check_backups(backups, archived, read_histories(store, archived))
    sizes = [b.xlog_segment_size for b in backups if b.xlog_segment_size]
    gaps = archive_gaps(archived, coverage, sizes[-1] if sizes else DEFAULT_SEGMENT_SIZE)
    if args.format == "json":
        print_json(_report(args, len(archived), coverage, gaps=gaps, repaired=repaired))
    else:
        if repaired is not None and not args.quiet:
            print(repaired.summary)
        _print_coverage(args.server_name, coverage)
        _print_gaps(gaps)
        print(_summary(args.server_name, archived, coverage, gaps))
    if repaired is not None and gaps:
        from core.wal.repair import RECOMMENDATION

        for line in repaired.lost:
            print(line, file=sys.stderr)
        raise ArchiveGaps(
            f"{sum(g.segments for g in gaps)} segment(s) not repaired: {RECOMMENDATION}"
        )
    failed = [c for c in coverage if not c.ok]
    if failed:  # a gap that cuts no backup's recovery (older than all of them) is not
        where_listed = "in the report's backups" if args.format == "json" else "listed above"
        raise ArchiveGaps(
            f"{len(failed)} of {len(coverage)} backup(s) lack WAL segments ({where_listed}); "
            "--repair archives again what the server still holds"
        )
    return ExitCode.OK


def _refuse_repair_flags(args: argparse.Namespace) -> None:
    source = ("pgdata", "host", "port", "user", "dbname")
    given = [f"--{name}" for name in source if getattr(args, name) is not None]
    if given and not args.repair:
        raise InputError(
            f"{', '.join(given)}: only with --repair (where it reads the missing segments)"
        )
    if args.repair and args.test:
        raise InputError("-t tests connectivity; it does not combine with --repair")


def _repair(
    args: argparse.Namespace, ctx: Context, where: Destination
) -> WalRepairJobResult | None:
    """Run the wal-repair job (bad input refused before it is recorded); its result."""
    from core.jobs.results import WalRepairJobResult
    from core.postgres.connection import ConnectionParams
    from core.wal.repair import RepairRequest, validate_request
    from core.wal.repair_job import WAL_REPAIR
    from tui.batch.jobrun import run_as_job

    connection = None
    if any(getattr(args, n) is not None for n in ("host", "port", "user", "dbname")):
        port = None if args.port is None else str(args.port)
        connection = ConnectionParams(args.host, port, args.user, args.dbname or "postgres")
    request = RepairRequest(
        location=where.location,
        server=args.server_name,
        pgdata=os.path.abspath(args.pgdata) if args.pgdata else None,
        connection=connection,
        store_config=where.config,
    )
    validate_request(request)
    where.check()
    job = run_as_job(args, ctx, WAL_REPAIR, request)
    return None if job is None else job.result_as(WalRepairJobResult)


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
    gaps: Sequence[WalGap] = (),
    repaired: WalRepairJobResult | None = None,
) -> dict[str, Any]:
    """The --format json document: one shape for both checks (README, check-wal-archive)."""
    report = {
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
        "gaps": [
            {
                "timeline": g.timeline,
                "start": g.first_missing,
                "end": g.last_missing,
                "segments": g.segments,
                "backups": list(g.backups),
                "unrestorable": list(g.unrestorable),
            }
            for g in gaps
        ],
    }
    if repaired is not None:
        report["ok"] = report["ok"] and not gaps
        report["repair"] = repaired.to_json()
    return report


def _summary(
    server: str,
    archived: Collection[str],
    coverage: Sequence[BackupCoverage],
    gaps: Sequence[WalGap],
) -> str:
    """The last line: what was checked (segments, timelines, backups) and what was found."""
    from core.postgres.walnames import is_segment

    segments = sorted(name for name in archived if is_segment(name))
    timelines = sorted({int(name[:8], 16) for name in segments})
    where = (
        f"{len(segments)} WAL segment(s) on timeline(s) {', '.join(map(str, timelines))} "
        f"({segments[0]}..{segments[-1]})"
        if segments
        else "no WAL segment"
    )
    checked = f"checked the WAL archive of {server}: {where}, {len(coverage)} completed backup(s)"
    if not gaps:
        return f"{checked}: no gap"
    first = gaps[0]
    failed = sum(1 for item in coverage if not item.ok)
    lacking = f"; {failed} backup(s) lack WAL" if failed else "; no backup's recovery is cut"
    return (
        f"{checked}: {len(gaps)} gap(s), {sum(g.segments for g in gaps)} segment(s) missing; "
        f"first gap {first.first_missing}..{first.last_missing} on timeline "
        f"{first.timeline}{lacking}"
    )


def _print_gaps(gaps: Sequence[WalGap]) -> None:
    for gap in gaps:
        line = (
            f"gap: timeline {gap.timeline} {gap.first_missing}..{gap.last_missing} "
            f"({gap.segments} segment(s) missing)"
        )
        if gap.backups:
            line += f"; cuts the recovery range of backup(s) {', '.join(gap.backups)}"
            if gap.unrestorable:
                line += f" (unrestorable: {', '.join(gap.unrestorable)})"
        else:
            line += "; cuts no backup's recovery range"
        print(line)


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
