"""The `wal-repair` job kind: gap repair (core.wal.repair) recorded in the job store."""

from __future__ import annotations

from core.jobs.kinds import JobInfo, JobKind
from core.jobs.results import WalRepairJobResult
from core.progress import Reporter
from core.wal.repair import RepairRequest, lost_lines, public_request, run_repair, validate_request


def _run(request: RepairRequest, reporter: Reporter) -> WalRepairJobResult:
    result = run_repair(request, reporter)
    missing = sum(g.segments for g in result.before.gaps)
    lost = lost_lines(result.lost)
    lost_count = sum(g.segments for g in result.lost.gaps)
    if not result.before.gaps:
        summary = f"the WAL archive of {request.server} has no gaps: nothing to repair"
    else:
        summary = (
            f"{len(result.repaired)} of {missing} missing segment(s) archived again from "
            f"{result.source}"
        )
        if lost_count:
            summary += f"; {lost_count} lost (no longer in pg_wal)"
    return WalRepairJobResult(
        server=request.server,
        gaps_found=len(result.before.gaps),
        missing=missing,
        repaired=result.repaired,
        lost=tuple(lost),
        source=result.source,
        summary=summary,
    )


def _describe(request: RepairRequest) -> JobInfo:
    where = request.location.display()
    return JobInfo(
        description=f"WAL gap repair of {request.server} in {where}",
        server=request.server,
        destination=where,
    )


WAL_REPAIR: JobKind[RepairRequest] = JobKind(
    name="wal-repair",
    request_type=RepairRequest,
    run=_run,
    describe=_describe,
    entry="core.wal.repair_job:WAL_REPAIR",
    public=public_request,
    # Resuming is running again: segments already archived are found equal and skipped.
    resume=lambda request, failed: request,
    validate=validate_request,
)
