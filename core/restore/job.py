"""The `restore` job kind: how a restore runs and reports, described without secrets."""

from __future__ import annotations

from dataclasses import replace

from core.jobs.kinds import JobInfo, JobKind
from core.jobs.results import RestoreJobResult
from core.progress import Reporter
from core.restore import RestoreRequest, run_restore
from core.restore import result_summary as restore_summary
from core.restore import validate_request as validate_restore


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
    entry="core.restore.job:RESTORE",
    public=_public_restore,
    resume=None,
    instead_of_resume=(
        "run the same restore command again: a killed restore continues where it stopped "
        "(the files it wrote are checked and kept); one that failed removed what it wrote"
    ),
    validate=validate_restore,
)
