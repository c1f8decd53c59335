"""The product's job kinds: what `backup`, `restore`, `backup-delete` and `verify` run as jobs.

Each kind tells the engine how to run its request, how to describe it in the job store
without secrets, and (for backups) how to resume a failed one.
"""

from __future__ import annotations

from dataclasses import replace

from core.backup import BackupRequest, BackupResult, result_summary, run_backup, validate_request
from core.backup.barman_hook import BarmanUploadRequest, upload_barman_backup, validate_upload
from core.catalog.delete import DeleteRequest, describe, public_request, run_delete, wal_runs
from core.catalog.delete import validate_request as validate_delete
from core.jobs.kinds import JobInfo, JobKind
from core.jobs.model import Job
from core.jobs.results import (
    BackupJobResult,
    DeletedBackup,
    DeleteJobResult,
    RestoreJobResult,
    VerifyJobResult,
)
from core.progress import Reporter
from core.restore import RestoreRequest, run_restore
from core.restore import result_summary as restore_summary
from core.restore import validate_request as validate_restore
from core.secrets import without_password
from core.verify import VerifyRequest, run_verify
from core.verify import describe as describe_verify
from core.verify import public_request as public_verify
from core.verify import validate_request as validate_verify


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
    """Resume the failed job's backup: reuse its stored archives whose files are unchanged.
    An incremental is taken again from the start (it stores too little to be worth keeping)."""
    if request.incremental:
        return request
    return replace(request, resume=failed.details.backup_id)


BACKUP: JobKind[BackupRequest] = JobKind(
    name="backup",
    request_type=BackupRequest,
    run=_run_backup,
    describe=_describe,
    entry="core.jobs.builtin:BACKUP",
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
    entry="core.jobs.builtin:BARMAN_HOOK",
    public=lambda request: replace(request, location=request.location.without_credentials()),
    instead_of_resume="run the Barman hook again (barman's post_backup_retry_script retries it)",
    validate=validate_upload,
)


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
    entry="core.jobs.builtin:DELETE",
    public=public_request,
    validate=validate_delete,
)


# ---- restore --------------------------------------------------------------------------------


def _run_restore(request: RestoreRequest, reporter: Reporter) -> RestoreJobResult:
    if request.snapshot is not None:  # the data is on disks made from its snapshots
        from core.snapshots.restore import run_snapshot_restore

        result = run_snapshot_restore(request, reporter)
    else:
        result = run_restore(request, reporter)
    report = [restore_summary(result)]
    report += [f"verified: {line}" for line in result.verified]
    report += [f"not verified: {line}" for line in result.not_verified]
    report += [f"warning: {line}" for line in result.warnings]
    report.append(f"restore_command = {result.restore_command}")
    if result.credentials_file:
        report.append(
            f"credentials for restore_command: {result.credentials_file} (0600, removed by "
            "recovery_end_command once recovery ends)"
        )
    report.append(
        f"next: start PostgreSQL as the data directory's owner, e.g. "
        f"pg_ctl -D {result.recovery_dir} start; it recovers to {result.target}; "
        + _port_note(request.port)
    )
    return RestoreJobResult(
        backup_id=result.backup_id,
        recovery_dir=result.recovery_dir,
        tablespaces=result.tablespaces,
        files=result.files,
        bytes_written=result.bytes_written,
        bytes_downloaded=result.bytes_downloaded,
        target=result.target,
        credentials_file=result.credentials_file,
        wal_restore_dir=result.wal_restore_dir,
        warnings=result.warnings,
        summary=report[0],
        report=tuple(report),
        kept_files=result.kept_files if request.delta else None,
        kept_bytes=result.kept_bytes if request.delta else None,
    )


def _port_note(port: int | None) -> str:
    if port is not None:
        return f"it listens on port {port} (--port)"
    return "it listens on the source's port (restore with --port N to change it)"


def _describe_restore(request: RestoreRequest) -> JobInfo:
    where = request.location.display()
    return JobInfo(
        description=f"restore of {request.server} {request.backup} from {where} "
        f"into {request.recovery_dir}",
        server=request.server,
        destination=where,
    )


def _public_restore(request: RestoreRequest) -> RestoreRequest:
    """The request without the URL's credentials (environment ones are never in it)."""
    return replace(request, location=request.location.without_credentials())


RESTORE: JobKind[RestoreRequest] = JobKind(
    name="restore",
    request_type=RestoreRequest,
    run=_run_restore,
    describe=_describe_restore,
    entry="core.jobs.builtin:RESTORE",
    public=_public_restore,
    resume=None,
    instead_of_resume="a failed restore removes what it wrote; run the restore again",
    validate=validate_restore,
)


# ---- verify ---------------------------------------------------------------------------------


def _run_verify(request: VerifyRequest, reporter: Reporter) -> VerifyJobResult:
    result = run_verify(request, reporter)
    drill = ", restore drill passed" if result.drill else ""
    return VerifyJobResult(
        backup_id=result.backup_id,
        server=result.server,
        written_by=result.written_by,
        objects=result.objects,
        bytes_read=result.bytes_read,
        checked=result.checked,
        not_checked=result.not_checked,
        drill=result.drill,
        summary=f"backup {result.backup_id}: verified, {result.objects} objects, "
        f"{result.bytes_read} bytes read{drill}",
    )


VERIFY: JobKind[VerifyRequest] = JobKind(
    name="verify",
    request_type=VerifyRequest,
    run=_run_verify,
    describe=lambda request: JobInfo(
        description=describe_verify(request),
        server=request.server,
        destination=request.location.display(),
    ),
    entry="core.jobs.builtin:VERIFY",
    public=public_verify,
    validate=validate_verify,
)
