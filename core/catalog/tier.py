"""A backup's storage tier: its archives moved to the archive tier in place, and back.

Only the archive objects (data.tar..., <oid>.tar...) change tier; backup.info, the
manifests and the annotations stay readable, so listing and showing need no rehydration.
`annotations/tier` (body `archive`) is the catalog's record. It is written before the
first archive moves and removed only after the last one is back online, so a backup
that is even partly archived is never restored as if it were whole. Both directions
skip objects already where they should be, so a crashed move is finished by repeating it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from core.catalog.backup_info import DONE
from core.catalog.layout import ServerLayout, parse_archive_name
from core.errors import InputError, ObjectNotFound, OperationFailed
from core.progress import NullReporter, Reporter
from core.storage import ObjectInfo, ObjectStore

log = logging.getLogger("pgvault.tier")

STANDARD = "standard"
ARCHIVE = "archive"
TIERS = (STANDARD, ARCHIVE)


def read_tier(store: ObjectStore, server: str, backup_id: str) -> str:
    """`archive` when the backup's record says so, `standard` otherwise."""
    try:
        raw = store.get_bytes(ServerLayout(server).tier_annotation(backup_id))
    except ObjectNotFound:
        return STANDARD
    return ARCHIVE if raw.decode("utf-8", "replace").strip() == ARCHIVE else STANDARD


def archive_objects(store: ObjectStore, server: str, backup_id: str) -> list[ObjectInfo]:
    """The backup's archive objects (what changes tier), as listed with their class."""
    prefix = ServerLayout(server).backup_prefix(backup_id)
    return [
        obj
        for obj in store.list_objects(prefix)
        if "/" not in obj.key[len(prefix) :]
        and parse_archive_name(obj.key.rsplit("/", 1)[-1]) is not None
    ]


def archive_backup(store: ObjectStore, server: str, backup_id: str, status: str) -> int:
    """Move a DONE backup's archives to the archive tier; how many objects moved."""
    if status != DONE:
        raise OperationFailed(
            f"cannot archive backup {backup_id}: its status is {status}; only DONE backups move"
        )
    if store.archive_class is None:
        raise InputError(f"cannot archive backup {backup_id}: {store.archive_refusal}")
    parts = archive_objects(store, server, backup_id)
    if not parts:
        raise OperationFailed(f"backup {backup_id} of {server} has no archive objects to move")
    store.put_bytes(ServerLayout(server).tier_annotation(backup_id), ARCHIVE.encode())
    moved = 0
    for obj in parts:
        if not store.is_archived(obj):
            store.archive(obj.key)
            moved += 1
    log.info("backup %s of %s: %d archive objects in the archive tier", backup_id, server, moved)
    return moved


def rehydrate_backup(
    store: ObjectStore,
    server: str,
    backup_id: str,
    reporter: Reporter | None = None,
    poll_seconds: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Bring an archived backup's archives back to the normal tier, polling until they are.

    Returns how many objects were archived. The record is removed last.
    """
    reporter = reporter or NullReporter()
    pending = [
        obj.key for obj in archive_objects(store, server, backup_id) if store.is_archived(obj)
    ]
    total = len(pending)
    reporter.set_totals(files_total=total)
    while pending:
        reporter.checkpoint()
        still = [key for key in pending if not store.rehydrate(key)]
        reporter.advance(files=len(pending) - len(still))
        pending = still
        if pending:
            reporter.log(f"{len(pending)} of {total} objects still rehydrating")
            sleep(poll_seconds)
    store.delete_many([ServerLayout(server).tier_annotation(backup_id)])
    log.info("backup %s of %s: back in the standard tier (%d objects)", backup_id, server, total)
    return total


def rehydrate_hint(backup_id: str, server: str) -> str:
    """What an operator does about an archived backup (one line)."""
    return (
        f"backup {backup_id} of {server} is in the archive tier and must be rehydrated first: "
        f"run `restore --rehydrate` or `backup-rehydrate {server} {backup_id}`"
    )


__all__ = [
    "ARCHIVE",
    "STANDARD",
    "TIERS",
    "archive_backup",
    "archive_objects",
    "read_tier",
    "rehydrate_backup",
    "rehydrate_hint",
]
