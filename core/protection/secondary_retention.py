"""`--secondary-retention follow`: retention's deletions at the primary, repeated at the
instance's secondary destination.

Only a backup retention deleted at the primary is deleted there, and only when the source's
copies record listed a copy at the secondary before the primary deletion (that deletion
drops the record's entry) and the secondary itself still holds it: a backup that is only in
the secondary (copied by hand, or whose primary copy someone else deleted) is never
touched. Each deletion is an ordinary delete job against the secondary (physical: the WAL
only it needed goes too) or a logical backup's deletion, incrementals before their parents.
An S3 secondary's Object Lock (or legal hold) holds the copy, never deleted early.

A copy that is held or whose deletion failed is remembered in the vault
(`.pgvault/vaults/<vault>/secondary/<instance>.json`): its primary backup is gone, so no
later plan names it, and each pass tries it again until it is deleted or gone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from core.catalog.chains import dependents
from core.catalog.copies import read_copies
from core.catalog.reader import Catalog
from core.errors import ObjectNotFound, PgvaultError
from core.jobs import JobState, JobStore
from core.logical.catalog import list_logical
from core.logical.layout import is_logical_id
from core.protection.locks import backup_lock_states
from core.protection.model import BackupInstance, SecondaryRetention
from core.protection.service import OpenVault
from core.storage import ObjectStore, StoreConfig, open_store
from core.urls import Location, Provider, parse_location

log = logging.getLogger("pgvault.protection")


@dataclass(frozen=True)
class SecondaryOutcome:
    """What happened to one backup's copy in the secondary: done, held or failed."""

    backup_id: str
    result: str
    reason: str | None = None
    until: datetime | None = None


def follows(instance: BackupInstance) -> bool:
    return (
        instance.secondary_retention is SecondaryRetention.FOLLOW
        and instance.secondary_destination is not None
    )


def recorded_at_secondary(vault: OpenVault, instance: BackupInstance) -> set[str]:
    """The backups the copies record lists at the secondary: read before any deletion."""
    second = instance.secondary_destination
    copies = read_copies(vault.store.store, instance.server_name)
    return {backup_id for backup_id, urls in copies.items() if second in urls}


def _pending_key(vault: OpenVault, instance: BackupInstance) -> str:
    return f"{vault.store.prefix}secondary/{instance.name}.json"


def pending(vault: OpenVault, instance: BackupInstance) -> set[str]:
    """Copies whose deletion an earlier pass could not finish (held or failed)."""
    try:
        raw = vault.store.store.get_bytes(_pending_key(vault, instance))
    except ObjectNotFound:
        return set()
    try:
        return {str(b) for b in json.loads(raw)["pending"]}
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring %s: not a pending list", _pending_key(vault, instance))
        return set()


def _save_pending(vault: OpenVault, instance: BackupInstance, ids: set[str]) -> None:
    key = _pending_key(vault, instance)
    if not ids:
        vault.store.store.delete_many([key])
        return
    body = json.dumps({"pending": sorted(ids)}, indent=2).encode() + b"\n"
    vault.store.store.put_bytes(key, body)


def delete_at_secondary(
    vault: OpenVault,
    jobs: JobStore,
    instance: BackupInstance,
    backup_ids: Iterable[str],
    now: datetime,
) -> list[SecondaryOutcome]:
    """Delete these backups (deleted at the primary) in the secondary, newest first: an
    incremental before its parent. Remembers what is held or failed for the next pass."""
    try:
        earlier: set[str] | None = pending(vault, instance)
    except PgvaultError as exc:  # this pass's deletions still go; the list is kept as it is
        log.error("%s: the secondary's pending deletions were not read: %s", instance.name, exc)
        earlier = None
    wanted = sorted(set(backup_ids) | (earlier or set()), reverse=True)
    if not wanted:
        return []
    location = parse_location(instance.secondary_destination or "")
    server = instance.server_name
    try:
        with open_store(location, StoreConfig()) as store:
            outcomes = _delete_all(jobs, store, location, server, wanted, now)
    except PgvaultError as exc:  # the secondary cannot be reached: all of them wait
        outcomes = [SecondaryOutcome(b, "failed", str(exc)) for b in wanted]
    left = {o.backup_id for o in outcomes if o.result != "done"}
    if earlier is not None and left != earlier:
        try:
            _save_pending(vault, instance, left)
        except PgvaultError as exc:
            log.error("%s: the secondary's pending deletions were not saved: %s", server, exc)
    return outcomes


def _delete_all(
    jobs: JobStore,
    store: ObjectStore,
    location: Location,
    server: str,
    wanted: list[str],
    now: datetime,
) -> list[SecondaryOutcome]:
    catalog = Catalog(store, server)
    held = {b.backup_id for b in catalog.backups()}
    if any(is_logical_id(b) for b in wanted):
        held |= {m.backup_id for m in list_logical(store, server)}
    present = [b for b in wanted if b in held]
    locks = backup_lock_states(store, server, present, now)
    # an incremental there that stays (held, or never the instance's) keeps its parents
    needs = dependents(catalog, present)
    outcomes: list[SecondaryOutcome] = []
    for backup_id in present:
        lock = locks.get(backup_id)
        gone = {o.backup_id for o in outcomes if o.result == "done"}
        staying = sorted(set(needs.get(backup_id, ())) - gone)
        if staying:
            why = f"incremental backup(s) {', '.join(staying)} in the secondary need it"
            outcomes.append(SecondaryOutcome(backup_id, "held", why))
        elif lock is not None and lock.legal_holds:
            count = lock.legal_holds
            objects = "1 object" if count == 1 else f"{count} objects"
            why = f"legal hold on {objects} (held until the hold is removed)"
            outcomes.append(SecondaryOutcome(backup_id, "held", why))
        elif lock is not None and lock.until is not None:
            why = f"locked until {lock.until.isoformat()}"
            outcomes.append(SecondaryOutcome(backup_id, "held", why, lock.until))
        else:
            error = _delete_one(jobs, store, location, server, backup_id)
            outcomes.append(SecondaryOutcome(backup_id, "failed" if error else "done", error))
    return outcomes


def _delete_one(
    jobs: JobStore, store: ObjectStore, location: Location, server: str, backup_id: str
) -> str | None:
    """One delete job against the secondary (what backup-delete -b ID does there)."""
    if is_logical_id(backup_id):
        from core.protection.runs import delete_logical_in

        return delete_logical_in(store, server, backup_id)
    from core.catalog.delete import DeleteRequest
    from core.catalog.delete_job import DELETE
    from core.jobs.runner import run_foreground

    request = DeleteRequest(
        location=location,
        server=server,
        backup=backup_id,
        # a lock set after the check above refuses the job: never deleted early
        check_object_lock=location.provider is Provider.S3,
    )
    outcome = run_foreground(jobs, DELETE, request, capture_logging=True)
    if outcome.job.state is JobState.SUCCEEDED:
        log.info("deleted backup %s of %s in the secondary destination", backup_id, server)
        return None
    return outcome.job.error or str(outcome.error)


__all__ = [
    "SecondaryOutcome",
    "delete_at_secondary",
    "follows",
    "pending",
    "recorded_at_secondary",
]
