"""The logical backup and restore as job kinds (`logical-backup`, `logical-restore`)."""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from core.jobs.kinds import JobInfo, JobKind
from core.jobs.model import Job
from core.jobs.results import LogicalJobResult
from core.logical.backup import run_logical_backup
from core.logical.backup import summary as backup_summary
from core.logical.backup import validate_request as validate_backup
from core.logical.request import LogicalBackupRequest
from core.logical.restore import LogicalRestoreRequest, run_logical_restore
from core.logical.restore import summary as restore_summary
from core.logical.restore import validate_request as validate_restore
from core.logical.restore_all import run_restore_all
from core.progress import Reporter
from core.secrets import without_password

R = TypeVar("R", LogicalBackupRequest, LogicalRestoreRequest)


def _public(request: R) -> R:
    """Without credentials: none from the URL, no PostgreSQL password."""
    connection = replace(request.connection, dbname=without_password(request.connection.dbname))
    return replace(request, location=request.location.without_credentials(), connection=connection)


def _run_backup(request: LogicalBackupRequest, reporter: Reporter) -> LogicalJobResult:
    result = run_logical_backup(request, reporter)
    reporter.phase("done")  # as a physical backup's: a failed one keeps its phase
    return LogicalJobResult(
        backup_id=result.backup_id,
        database=result.database,
        target_database=None,
        tables=result.tables,
        bytes=result.stored_bytes,
        tool=result.pg_dump,
        summary=backup_summary(result),
    )


def _run_restore(request: LogicalRestoreRequest, reporter: Reporter) -> LogicalJobResult:
    if request.all_databases:
        result = run_restore_all(request, reporter)
    else:
        result = run_logical_restore(request, reporter)
    reporter.phase("done")
    return LogicalJobResult(
        backup_id=result.backup_id,
        database=result.database,
        target_database=result.target_database,
        tables=result.tables,
        bytes=result.bytes_downloaded,
        tool=result.pg_restore,
        summary=restore_summary(result),
    )


def _resume(request: LogicalBackupRequest, failed: Job) -> LogicalBackupRequest:
    """Take the failed or cancelled job's backup again under its ID, on a new snapshot (its
    files cannot be mixed with it: see core.logical.attempt)."""
    return replace(request, resume=failed.details.backup_id)


def _what(request: LogicalBackupRequest) -> str:
    return f"database {request.database}" if request.database else "all databases"


LOGICAL_BACKUP: JobKind[LogicalBackupRequest] = JobKind(
    name="logical-backup",
    request_type=LogicalBackupRequest,
    run=_run_backup,
    describe=lambda r: JobInfo(
        description=f"logical backup of {_what(r)} of {r.server} to {r.location.display()}",
        server=r.server,
        destination=r.location.display(),
    ),
    entry="core.logical.jobs:LOGICAL_BACKUP",
    public=_public,
    resume=_resume,
    resumes_cancelled=True,
    validate=validate_backup,
)

LOGICAL_RESTORE: JobKind[LogicalRestoreRequest] = JobKind(
    name="logical-restore",
    request_type=LogicalRestoreRequest,
    run=_run_restore,
    describe=lambda r: JobInfo(
        description=f"logical restore of {r.server} {r.backup} from {r.location.display()}",
        server=r.server,
        destination=r.location.display(),
    ),
    entry="core.logical.jobs:LOGICAL_RESTORE",
    public=_public,
    instead_of_resume="a failed logical restore removes what it made; run it again",
    validate=validate_restore,
)
