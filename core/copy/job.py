"""The `copy` job: backups and the WAL they need from one destination to another.

Objects are copied as stored (an encrypted backup stays an age file: no key is needed),
each one verified on arrival (core.copy.transfer). A rerun skips what arrived intact, so
resuming a failed or cancelled copy is running it again. Once a backup is sealed on the
target the source records that copy (core.catalog.copies).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from core.catalog.copies import record_copy
from core.copy.place import place
from core.copy.plan import CopyPlan, plan_copy
from core.copy.resume import forget_all
from core.copy.transfer import Outcome, copy_object
from core.errors import InputError, OperationFailed
from core.jobs.kinds import JobInfo, JobKind
from core.jobs.results import CopyJobResult
from core.progress import Reporter
from core.storage import ObjectStore, StoreConfig, open_store
from core.units import format_size
from core.urls import Location, credential_params, parse_location, public_url


@dataclass(frozen=True)
class CopyRequest:
    location: Location
    server: str
    target: Location
    #: backup IDs, names, latest/oldest, logical IDs; empty with `everything`
    backups: tuple[str, ...] = ()
    everything: bool = False
    #: every WAL segment from the oldest copied backup on (point-in-time recovery there)
    whole_wal: bool = False
    store_config: StoreConfig = field(default_factory=StoreConfig)
    target_config: StoreConfig = field(default_factory=StoreConfig)


def secondary_url(url: str, what: str = "the --secondary-destination URL") -> str:
    """A secondary destination as stored in a vault: checked, with no credential in it
    (the agent reads the secondary's credentials from its environment, as for any URL)."""
    location = parse_location(url)
    if credential_params(location):
        raise InputError(
            f"{what} carries credentials, which are never stored in a vault; give "
            "the agent the secondary's credentials in its environment instead"
        )
    return public_url(location)


def validate_request(request: CopyRequest) -> None:
    """Bad input (exit 3) before any job is recorded."""
    if request.everything and request.backups:
        raise InputError("name backups or give --all, not both")
    if not request.everything and not request.backups:
        raise InputError("name the backups to copy (IDs, names, latest, oldest) or give --all")
    if place(request.location, request.store_config) == place(
        request.target, request.target_config
    ):
        raise InputError("the copy's target is its source: name another destination with --to")


def run_copy(request: CopyRequest, reporter: Reporter) -> CopyJobResult:
    """Plan, then copy and verify object by object; each backup recorded once sealed."""
    reporter.phase("planning")
    with (
        open_store(request.location, request.store_config) as source,
        open_store(request.target, request.target_config) as target,
    ):
        target.check()
        for store in (source, target):
            store.gate = reporter.checkpoint
            store.meter = reporter.transferred
        plan = plan_copy(
            source, request.server, request.backups, request.everything, request.whole_wal
        )
        if plan.missing_wal:
            # Refused before anything is written: the target would list a backup that
            # cannot reach consistency.
            more = f" and {len(plan.missing_wal) - 1} more" if len(plan.missing_wal) > 1 else ""
            raise OperationFailed(
                f"WAL segment {plan.missing_wal[0]}{more} that backup(s) "
                f"{', '.join(plan.physical)} need to be consistent is missing in "
                f"{source.describe()}: nothing copied"
            )
        reporter.set_totals(plan.total_bytes, len(plan.items))
        reporter.log(_plan_line(plan, target.describe()))
        reporter.phase("copying")
        tally = _copy_items(source, target, request, plan, reporter)
    reporter.phase("done")  # as a backup's and a restore's: a failed copy keeps its phase
    return _result(request, plan, tally)


@dataclass
class _Tally:
    copied: int = 0
    skipped: int = 0
    copied_bytes: int = 0
    reused: int = 0  # bytes of killed copies' uploads continued, not sent again
    warnings: list[str] = field(default_factory=list)


def _copy_items(
    source: ObjectStore, target: ObjectStore, request: CopyRequest, plan: CopyPlan, r: Reporter
) -> _Tally:
    tally = _Tally()
    url = public_url(request.target)
    for item in plan.items:
        if item.seals is not None and item.backup_prefix is not None:
            forget_all(target, item.backup_prefix)
        copied = copy_object(source, target, item.key, r, item.backup_prefix)
        r.advance(files=1)
        tally.reused += copied.reused
        if copied.outcome is Outcome.COPIED:
            tally.copied += 1
            tally.copied_bytes += item.size
        else:
            tally.skipped += 1
        if item.seals is not None:
            warning = record_copy(source, request.server, [item.seals], url)
            if warning is not None:
                r.log(warning, logging.WARNING)
                tally.warnings.append(warning)
    return tally


def _result(request: CopyRequest, plan: CopyPlan, tally: _Tally) -> CopyJobResult:
    summary = (
        f"{len(plan.physical)} backup(s), {len(plan.logical)} logical backup(s) and "
        f"{plan.wal_files} WAL file(s) of {request.server} on {request.target.display()}: "
        f"{tally.copied} object(s) copied and verified ({format_size(tally.copied_bytes)}), "
        f"{tally.skipped} already there"
    )
    if tally.reused:
        summary += f"; {format_size(tally.reused)} a killed copy had stored kept, not sent again"
    return CopyJobResult(
        target=public_url(request.target),
        physical=plan.physical,
        logical=plan.logical,
        wal_files=plan.wal_files,
        copied=tally.copied,
        skipped=tally.skipped,
        bytes_copied=tally.copied_bytes,
        summary=summary,
        warnings=tuple(tally.warnings),
        reused_stored_bytes=tally.reused,
    )


def _plan_line(plan: CopyPlan, where: str) -> str:
    backups = ", ".join((*plan.physical, *plan.logical)) or "none"
    return (
        f"copying backups {backups} and {plan.wal_files} WAL file(s) to {where}: "
        f"{len(plan.items)} object(s), {format_size(plan.total_bytes)}"
    )


def public_request(request: CopyRequest) -> CopyRequest:
    return replace(
        request,
        location=request.location.without_credentials(),
        target=request.target.without_credentials(),
    )


COPY: JobKind[CopyRequest] = JobKind(
    name="copy",
    request_type=CopyRequest,
    run=run_copy,
    describe=lambda request: JobInfo(
        description=f"copy {request.server} from {request.location.display()} "
        f"to {request.target.display()}",
        server=request.server,
        # A copy's destination is where it writes: its target (jobs list's DEST)
        destination=request.target.display(),
    ),
    entry="core.copy.job:COPY",
    public=public_request,
    resume=lambda request, _job: request,  # objects already copied are found equal, skipped
    validate=validate_request,
)
