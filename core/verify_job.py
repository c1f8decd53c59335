"""The `verify` job kind: a backup's objects and checksums, and --restore-drill."""

from __future__ import annotations

from core.jobs.kinds import JobInfo, JobKind
from core.jobs.results import VerifyJobResult
from core.progress import Reporter
from core.verify import VerifyRequest, run_verify
from core.verify import describe as describe_verify
from core.verify import public_request as public_verify
from core.verify import validate_request as validate_verify


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
    entry="core.verify_job:VERIFY",
    public=public_verify,
    validate=validate_verify,
)
