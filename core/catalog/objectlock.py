"""S3 Object Lock as deletion sees it: which objects of a backup cannot be deleted yet.

barman-cloud-backup-delete --check-object-lock's rule: an object whose current version has a
retain-until date still in the future, or a legal hold, is locked. It is read with
head_object, as barman does: GetObjectRetention is missing from some S3-compatible stores
(moto answers 500), while HEAD carries the same mode, date and hold.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from core.errors import AccessDenied, InputError, ObjectNotFound, StorageError
from core.storage import ObjectStore
from core.urls import Location, Provider

log = logging.getLogger("pgvault.objectlock")


@dataclass(frozen=True)
class LockedObject:
    """An object that cannot be deleted yet; `until` is None for a legal hold."""

    key: str
    until: datetime | None
    mode: str | None = None

    def describe(self) -> str:
        if self.until is None:
            return f"{self.key} has a legal hold (it can be deleted once the hold is removed)"
        return f"{self.key} is locked ({self.mode or 'retention'}) until {self.until.isoformat()}"


def require_object_lock(location: Location, what: str = "--check-object-lock") -> None:
    """S3 Object Lock exists on S3 only: elsewhere the check is refused, not skipped."""
    if location.provider is not Provider.S3:
        raise InputError(
            f"{what} applies to S3 destinations only (S3 Object Lock); "
            f"{location.display()} is {location.provider.value}"
        )


def bucket_has_object_lock(store: ObjectStore) -> bool:
    """Whether deletions must check locks without being asked: the bucket has Object Lock
    enabled (one request; False off S3). A user not allowed to read the bucket's lock
    configuration, or an S3-compatible store without that request, gets a warning and no
    check, as before this was looked at (--check-object-lock still asks for it)."""
    try:
        return store.object_lock_enabled()
    except (AccessDenied, StorageError) as exc:
        log.warning("cannot tell whether the bucket has S3 Object Lock (%s): not checked", exc)
        return False


def locked_objects(
    store: ObjectStore, keys: Iterable[str], now: datetime | None = None
) -> list[LockedObject]:
    """The objects among keys still under a retention period or a legal hold (one HEAD
    each); an object gone meanwhile is not locked."""
    moment = now or datetime.now(UTC)
    locked = []
    for key in keys:
        try:
            info = store.head(key)
        except ObjectNotFound:
            continue
        if info.legal_hold:
            locked.append(LockedObject(key, None, info.lock_mode))
        elif info.locked_until is not None and info.locked_until > moment:
            locked.append(LockedObject(key, info.locked_until, info.lock_mode))
    return locked


__all__ = ["LockedObject", "bucket_has_object_lock", "locked_objects", "require_object_lock"]
