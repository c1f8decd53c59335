"""`copy --refresh`: each copy the source's record lists, checked at its target, and the
ones that do not stand removed from the record (copies recorded meanwhile stay).

A copy is complete when the target holds every object a copy of that backup would write
(core.copy.plan: its parents, the WAL from its begin to its end, the key file when the
backup is encrypted), each backup
object at its source size; WAL counts by name (a secondary destination may seal or compress
it anew) and the key file too (rotated keys rewrite it). A complete copy, and one whose
target could not be checked, stay in the record; a missing or incomplete copy, and the entry
of a backup the source no longer has, go.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from core.catalog.copies import drop_copies, read_copies
from core.catalog.layout import ENCRYPTED_SUFFIX, ServerLayout
from core.copy.plan import CopyItem, plan_copy
from core.encryption import KEYFILE, is_encrypted
from core.errors import ContainerNotFound, ObjectNotFound, PgvaultError
from core.logical.layout import LogicalLayout, is_logical_id
from core.storage import ObjectStore, StoreConfig, open_store
from core.urls import parse_location


class CopyState(StrEnum):
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"  # some objects are missing or of another size: removed
    MISSING = "missing"  # the backup is not there at all (or its bucket is gone): removed
    SOURCE_GONE = "source-gone"  # the source no longer has the backup: removed
    UNCHECKED = "unchecked"  # the target could not be reached or read: kept


KEPT = frozenset({CopyState.COMPLETE, CopyState.UNCHECKED})


@dataclass(frozen=True)
class CopyCheck:
    backup_id: str
    url: str
    state: CopyState
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "url": self.url,
            "state": str(self.state),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class RefreshResult:
    server: str
    checks: tuple[CopyCheck, ...]
    checked_at: str

    @property
    def removed(self) -> tuple[CopyCheck, ...]:
        return tuple(c for c in self.checks if c.state not in KEPT)

    @property
    def unchecked(self) -> tuple[CopyCheck, ...]:
        return tuple(c for c in self.checks if c.state is CopyState.UNCHECKED)

    def summary(self) -> str:
        complete = sum(1 for c in self.checks if c.state is CopyState.COMPLETE)
        return (
            f"{len(self.checks)} recorded copie(s) of {self.server} checked: {complete} "
            f"complete, {len(self.removed)} removed from the record, "
            f"{len(self.unchecked)} could not be checked (kept)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "checked_at": self.checked_at,
            "copies": [c.to_json() for c in self.checks],
            "removed": len(self.removed),
            "unchecked": len(self.unchecked),
        }


#: a target listed: object key -> size, or why it could not be listed
Listing = dict[str, int] | PgvaultError


def refresh_copies(source: ObjectStore, server: str) -> RefreshResult:
    """Check every recorded copy at its target; rewrite the record to the ones that stand."""
    recorded = read_copies(source, server)
    listings: dict[str, Listing] = {}
    checks: list[CopyCheck] = []
    for backup_id, urls in sorted(recorded.items()):
        wanted = _wanted(source, server, backup_id)
        for url in urls:
            if url not in listings:
                listings[url] = _list_target(url, server)
            checks.append(_check(backup_id, url, wanted, listings[url], server))
    if gone := {(c.backup_id, c.url) for c in checks if c.state not in KEPT}:
        drop_copies(source, server, gone)
    return RefreshResult(server, tuple(checks), datetime.now(UTC).isoformat(timespec="seconds"))


#: what a complete copy holds, why the source cannot say (str), or None: not in the source
Wanted = tuple[CopyItem, ...] | str | None


def _wanted(source: ObjectStore, server: str, backup_id: str) -> Wanted:
    """What a complete copy of the backup holds, or why the source cannot say."""
    try:
        plan = plan_copy(source, server, (backup_id,), everything=False, whole_wal=False)
    except ObjectNotFound:
        return None
    except PgvaultError as exc:
        return f"the source cannot say what the copy holds: {exc}"
    # WAL the source lacks is still wanted: a copy without it cannot be restored.
    items = plan.items + tuple(CopyItem(key, 0) for key in plan.missing_wal)
    keyfile = f"{server}/{KEYFILE}"
    if any(i.key == keyfile for i in items) and not _encrypted(source, server, backup_id, items):
        # A key file made after the copy (keys init) is nothing an unencrypted backup needs.
        items = tuple(i for i in items if i.key != keyfile)
    return items


def _encrypted(
    source: ObjectStore, server: str, backup_id: str, items: tuple[CopyItem, ...]
) -> bool:
    """Whether restoring the backup (or a parent) needs the key file; when unsure, it does."""
    if not is_logical_id(backup_id):
        base = ServerLayout(server).base_prefix
        return any(i.key.startswith(base) and i.key.endswith(ENCRYPTED_SUFFIX) for i in items)
    try:  # an encrypted logical backup's manifest is an age file too
        return is_encrypted(source.get_bytes(LogicalLayout(server).manifest(backup_id)))
    except PgvaultError:
        return True


def _list_target(url: str, server: str) -> Listing:
    try:
        with open_store(parse_location(url), StoreConfig()) as target:
            return {o.key: o.size for o in target.list_objects(f"{server}/")}
    except PgvaultError as exc:
        return exc


def _check(backup_id: str, url: str, wanted: Wanted, listing: Listing, server: str) -> CopyCheck:
    if wanted is None:
        return CopyCheck(backup_id, url, CopyState.SOURCE_GONE, "not in the source any more")
    if isinstance(listing, ContainerNotFound):
        return CopyCheck(backup_id, url, CopyState.MISSING, str(listing))
    if isinstance(listing, PgvaultError):
        return CopyCheck(backup_id, url, CopyState.UNCHECKED, str(listing))
    if isinstance(wanted, str):
        return CopyCheck(backup_id, url, CopyState.UNCHECKED, wanted)
    state, detail = _verdict(backup_id, wanted, listing, server)
    return CopyCheck(backup_id, url, state, detail)


def _verdict(
    backup_id: str, wanted: tuple[CopyItem, ...], listing: dict[str, int], server: str
) -> tuple[CopyState, str]:
    """Complete, incomplete or missing: the target's listing against what a copy holds."""
    seal = next((item for item in wanted if item.seals == backup_id), None)
    if seal is not None and seal.key not in listing:
        return CopyState.MISSING, f"{seal.key} is not there"
    absent = _absent(wanted, listing, ServerLayout(server))
    if absent:
        more = f" and {len(absent) - 1} more" if len(absent) > 1 else ""
        return CopyState.INCOMPLETE, f"{absent[0]}{more}"
    return CopyState.COMPLETE, f"{len(wanted)} object(s)"


def _absent(
    wanted: tuple[CopyItem, ...], listing: dict[str, int], layout: ServerLayout
) -> list[str]:
    """Each wanted object the target lacks (a backup object of another size counts)."""
    wal_names = {p[0] for key in listing if (p := layout.parse_wal(key)) is not None}
    absent = []
    for item in wanted:
        parsed = layout.parse_wal(item.key)
        if parsed is not None:
            if parsed[0] not in wal_names:
                absent.append(f"{item.key} is not there")
        elif item.key not in listing:
            absent.append(f"{item.key} is not there")
        elif listing[item.key] != item.size and not item.key.endswith(KEYFILE):
            absent.append(f"{item.key} holds {listing[item.key]} bytes, not {item.size}")
    return absent
