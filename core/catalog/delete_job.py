"""The `delete` job kind: backup-delete and retention runs."""

from __future__ import annotations

from core.catalog.delete import DeleteRequest, describe, public_request, run_delete, wal_runs
from core.catalog.delete import validate_request as validate_delete
from core.jobs.kinds import JobInfo, JobKind
from core.jobs.results import DeletedBackup, DeleteJobResult
from core.progress import Reporter


def _run_delete(request: DeleteRequest, reporter: Reporter) -> DeleteJobResult:
    result = run_delete(request, reporter)
    report = result.report
    return DeleteJobResult(
        server=result.server,
        dry_run=result.dry_run,
        policy=str(report.policy) if report else None,
        now=report.now.isoformat() if report else None,
        statuses=report.statuses if report else (),
        deleted=tuple(
            DeletedBackup(
                backup_id=d.backup_id,
                status=d.status,
                why=d.why,
                objects=d.objects,
                size=d.size,
                wal_count=len(d.wal.remove),
                # The WAL as runs of consecutive segments: a retention run frees thousands.
                wal_runs=tuple(wal_runs([n for n, _ in d.wal.remove], d.segment_size)),
                wal_reason=d.wal.reason,
            )
            for d in result.deletions
        ),
        skipped=result.skipped,
    )


DELETE: JobKind[DeleteRequest] = JobKind(
    name="delete",
    request_type=DeleteRequest,
    run=_run_delete,
    describe=lambda request: JobInfo(
        description=describe(request),
        server=request.server,
        destination=request.location.display(),
    ),
    entry="core.catalog.delete_job:DELETE",
    public=public_request,
    validate=validate_delete,
)
