"""The `rehydrate` job: bring an archived backup (and the chain it builds on) back online.

`backup-rehydrate` runs it alone; `restore --rehydrate` runs it before the restore job.
It polls the store (core.catalog.tier.rehydrate_backup) until every archive object is
readable in the normal tier; S3 restores take hours, so it can be paused or cancelled
between polls and run again later (objects already back are skipped).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.catalog.reader import Catalog
from core.catalog.tier import rehydrate_backup
from core.errors import InputError
from core.jobs.kinds import JobInfo, JobKind
from core.jobs.results import RehydrateJobResult
from core.logical.layout import refuse_logical
from core.progress import Reporter
from core.storage import StoreConfig, open_store
from core.urls import Location

DEFAULT_POLL = 60.0


@dataclass(frozen=True)
class RehydrateRequest:
    location: Location
    server: str
    backup: str  # an ID, a name, latest/oldest
    store_config: StoreConfig = field(default_factory=StoreConfig)
    #: seconds between two polls of objects still rehydrating
    poll_seconds: float = DEFAULT_POLL


def validate_request(request: RehydrateRequest) -> None:
    """Bad input (exit 3) before any job is recorded."""
    if not request.backup or request.backup == "auto":
        raise InputError("name the backup to rehydrate (an ID, a name, latest or oldest), not auto")
    refuse_logical(request.backup, "backup-rehydrate")
    if request.poll_seconds <= 0:
        raise InputError("the rehydration poll interval must be more than 0 seconds")


def run_rehydrate(request: RehydrateRequest, reporter: Reporter) -> RehydrateJobResult:
    """Rehydrate the backup and every parent it needs; the backups that were archived."""
    reporter.phase("reading the catalog")
    with open_store(request.location, request.store_config) as store:
        catalog = Catalog(store, request.server)
        info = catalog.resolve(request.backup)
        reporter.detail("backup_id", info.backup_id)
        archived = catalog.archived()
        chain = [info.backup_id]
        parent = info.parent_backup_id
        while parent:  # an incremental restores through every ancestor
            chain.append(parent)
            parent = catalog.get(parent).parent_backup_id
        done: list[str] = []
        objects = 0
        reporter.phase("rehydrating")
        for backup_id in chain:
            if backup_id in archived:
                reporter.log(f"rehydrating backup {backup_id}")
                objects += rehydrate_backup(
                    store, request.server, backup_id, reporter, request.poll_seconds
                )
                done.append(backup_id)
    if done:
        summary = f"backup {info.backup_id}: {objects} objects back in the standard tier"
    else:
        summary = f"backup {info.backup_id} is not archived: nothing to rehydrate"
    return RehydrateJobResult(info.backup_id, tuple(done), objects, summary)


REHYDRATE: JobKind[RehydrateRequest] = JobKind(
    name="rehydrate",
    request_type=RehydrateRequest,
    run=run_rehydrate,
    describe=lambda request: JobInfo(
        description=f"rehydrate {request.server} {request.backup} "
        f"from {request.location.display()}",
        server=request.server,
        destination=request.location.display(),
    ),
    entry="core.catalog.rehydrate:REHYDRATE",
    public=lambda request: replace(request, location=request.location.without_credentials()),
    resume=lambda request, _job: request,  # objects already back are skipped
    validate=validate_request,
)

__all__ = ["REHYDRATE", "RehydrateRequest", "run_rehydrate", "validate_request"]
