"""The `backup` job kind (and Barman's post_backup_script upload): how each runs, is
described without secrets, and (a backup) resumes."""

from __future__ import annotations

from dataclasses import replace

from core.backup import BackupRequest, BackupResult, result_summary, run_backup, validate_request
from core.backup.barman_hook import BarmanUploadRequest, upload_barman_backup, validate_upload
from core.jobs.kinds import JobInfo, JobKind
from core.jobs.model import Job
from core.jobs.results import BackupJobResult
from core.progress import Reporter
from core.secrets import without_password


def _backup_result(result: BackupResult, summary: str) -> BackupJobResult:
    return BackupJobResult(
        backup_id=result.backup_id,
        status=result.status,
        files=result.files,
        bytes_read=result.bytes_read,
        bytes_stored=result.bytes_stored,
        begin_wal=result.begin_wal,
        end_wal=result.end_wal,
        summary=summary,
    )


def _run_backup(request: BackupRequest, reporter: Reporter) -> BackupJobResult:
    if request.snapshot is not None:  # cloud disk snapshots instead of archives
        from core.snapshots.backup import run_snapshot_backup

        result = run_snapshot_backup(request, reporter)
    else:
        result = run_backup(request, reporter)
    return _backup_result(result, result_summary(result))


def _describe(request: BackupRequest) -> JobInfo:
    where = request.location.display()
    return JobInfo(
        description=f"backup of {request.server} to {where}",
        server=request.server,
        destination=where,
    )


def _public(request: BackupRequest) -> BackupRequest:
    """The request without credentials: none from the URL, no PostgreSQL password."""
    return replace(
        request,
        location=request.location.without_credentials(),
        connection=replace(request.connection, dbname=without_password(request.connection.dbname)),
    )


def _resume(request: BackupRequest, failed: Job) -> BackupRequest:
    """Resume the failed job's backup: reuse its stored archives whose files are unchanged
    (an incremental's on the parent it was started on, core.backup.increment_resume)."""
    backup_id = failed.details.backup_id
    if backup_id is None:  # it died before claiming an ID: nothing stored to continue
        return request
    return replace(request, resume=backup_id, incremental_from=None)


BACKUP: JobKind[BackupRequest] = JobKind(
    name="backup",
    request_type=BackupRequest,
    run=_run_backup,
    describe=_describe,
    entry="core.backup.job:BACKUP",
    public=_public,
    resume=_resume,
    validate=validate_request,
)


def _run_barman_hook(request: BarmanUploadRequest, reporter: Reporter) -> BackupJobResult:
    result = upload_barman_backup(request, reporter)
    summary = (
        result_summary(result)
        if result.archives
        else (f"backup {result.backup_id}: already in the destination, kept as it was")
    )
    return _backup_result(result, f"Barman {summary}")


def _describe_barman_hook(request: BarmanUploadRequest) -> JobInfo:
    where = request.location.display()
    return JobInfo(
        description=f"upload of Barman backup {request.backup_id} of {request.server} to {where}",
        server=request.server,
        destination=where,
    )


#: `backup` run by Barman as its post_backup_script: the upload of the backup Barman took
BARMAN_HOOK: JobKind[BarmanUploadRequest] = JobKind(
    name="barman-hook",
    request_type=BarmanUploadRequest,
    run=_run_barman_hook,
    describe=_describe_barman_hook,
    entry="core.backup.job:BARMAN_HOOK",
    public=lambda request: replace(request, location=request.location.without_credentials()),
    instead_of_resume="run the Barman hook again (barman's post_backup_retry_script retries it)",
    validate=validate_upload,
)
