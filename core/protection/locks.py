"""S3 Object Lock as the agent's retention sees it: when a due backup becomes deletable.

Only backups whose deletion or move is due are read (one HEAD per object), and only on S3,
the one store with Object Lock. A lock pgvault wrote (a vault's immutabilityDays) or the
bucket's default retention holds a backup until the last retain-until date of its objects;
a legal hold has no date: it holds the backup until someone removes it (the delete job's
own check, check_object_lock, still refuses one set after the plan was made).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from core.catalog.layout import ServerLayout
from core.catalog.objectlock import LockedObject, locked_objects
from core.catalog.reader import Catalog
from core.logical.layout import LogicalLayout, is_logical_id
from core.protection.model import RunRecord, RunState
from core.storage import ObjectStore
from core.urls import Provider

if TYPE_CHECKING:
    from core.protection.service import OpenVault

log = logging.getLogger("pgvault.protection")


def backup_prefix(server: str, backup_id: str) -> str:
    """Where a backup's objects are: a physical or a logical backup's directory."""
    if is_logical_id(backup_id):
        return LogicalLayout(server).backup_prefix(backup_id)
    return ServerLayout(server).backup_prefix(backup_id)


def backup_locks(
    store: ObjectStore, server: str, backup_id: str, now: datetime | None = None
) -> list[LockedObject]:
    """The backup's objects still locked at `now` (none off S3)."""
    if store.location.provider is not Provider.S3:
        return []
    keys = (item.key for item in store.list_objects(backup_prefix(server, backup_id)))
    return locked_objects(store, keys, now)


@dataclass(frozen=True)
class BackupLock:
    """What holds a backup at a moment: the last retain-until date still running among its
    objects, and how many of them are under a legal hold (no end date)."""

    until: datetime | None = None
    legal_holds: int = 0


def backup_lock_states(
    store: ObjectStore, server: str, backup_ids: Iterable[str], now: datetime
) -> dict[str, BackupLock]:
    """For each backup with a retention still running at `now` or a legal hold, its lock."""
    states = {}
    for backup_id in sorted(set(backup_ids)):
        locks = backup_locks(store, server, backup_id, now)
        dates = [lock.until for lock in locks if lock.until]
        holds = sum(1 for lock in locks if lock.until is None)
        if dates or holds:
            states[backup_id] = BackupLock(max(dates, default=None), holds)
    return states


def unlocked_wal(store: ObjectStore, server: str, wal_name: str, now: datetime) -> str | None:
    """The key of an archived WAL file that is under no retention at `now` (one listing of
    its name and one HEAD); None when it is locked, or not archived (nothing to say)."""
    if store.location.provider is not Provider.S3:
        return None
    layout = ServerLayout(server)
    for item in store.list_objects(f"{layout.wal_dir(wal_name)}{wal_name}"):
        parsed = layout.parse_wal(item.key)
        if parsed is None or parsed[0] != wal_name:
            continue
        return None if locked_objects(store, [item.key], now) else item.key
    return None


def wal_not_locked(
    vault: OpenVault, server: str, record: RunRecord | None, now: datetime
) -> list[str]:
    """In a vault with immutabilityDays, the WAL a new backup ends on must be locked too:
    archive_command writes it, and only `wal-archive --immutability-days` locks it. One
    listing and one HEAD per backup taken; an unlocked segment is this pass's error."""
    days = vault.immutability_days
    if days is None or record is None or record.state is not RunState.SUCCEEDED:
        return []
    if record.backup_id is None or is_logical_id(record.backup_id):
        return []
    end_wal = Catalog(vault.store.store, server).get(record.backup_id).end_wal
    if not end_wal:
        return []
    key = unlocked_wal(vault.store.store, server, end_wal, now)
    if key is None:
        return []
    error = (
        f"{record.instance}: WAL {end_wal} of {server} is not under S3 Object Lock, although "
        f"vault {vault.store.name} keeps its objects {days} days: add --immutability-days "
        f"{days} to the server's archive_command (pgvault --batch wal-archive)"
    )
    log.error("%s", error)
    return [error]


__all__ = [
    "BackupLock",
    "backup_lock_states",
    "backup_locks",
    "backup_prefix",
    "unlocked_wal",
    "wal_not_locked",
]
