"""Keep annotations: a backup retention never deletes, as barman-cloud-backup-keep writes them.

`<server>/base/<backup_id>/annotations/keep` holds `full` (keep the backup and every WAL
after it: point-in-time recovery from it stays possible) or `standalone` (keep the backup
and only the WAL from its begin_wal to its end_wal: enough to restore it to consistency).
The body is the bare word, no newline, exactly as barman writes it. Only DONE backups can
be kept; releasing a backup that has no annotation is not an error.
"""

from __future__ import annotations

import logging

from core.catalog.backup_info import DONE, BackupInfo
from core.catalog.layout import ServerLayout
from core.errors import ObjectNotFound, OperationFailed
from core.storage import ObjectStore

log = logging.getLogger("pgvault.keep")

KEEP_FULL = "full"
KEEP_STANDALONE = "standalone"
TARGETS = (KEEP_FULL, KEEP_STANDALONE)
NOKEEP = "nokeep"  # what `--status` prints for a backup without an annotation


def normalise_target(raw: bytes, backup_id: str) -> str:
    """The target an annotation body names; anything unknown counts as full (barman's rule)."""
    text = raw.decode("utf-8", "replace").strip()
    if text in TARGETS:
        return text
    log.warning(
        "backup %s has a keep annotation %r pgvault does not know: treated as full", backup_id, text
    )
    return KEEP_FULL


def read_keep(store: ObjectStore, server: str, backup_id: str) -> str | None:
    """The keep target of one backup, or None when it has no annotation."""
    try:
        raw = store.get_bytes(ServerLayout(server).keep_annotation(backup_id))
    except ObjectNotFound:
        return None
    return normalise_target(raw, backup_id)


def set_keep(store: ObjectStore, server: str, info: BackupInfo, target: str) -> None:
    """Annotate a DONE backup with `full` or `standalone` (replacing any earlier target)."""
    if target not in TARGETS:
        raise OperationFailed(f"unknown keep target {target!r} (full or standalone)")
    if info.status != DONE:
        raise OperationFailed(
            f"cannot keep backup {info.backup_id}: its status is {info.status}; "
            "only DONE backups can be kept"
        )
    store.put_bytes(ServerLayout(server).keep_annotation(info.backup_id), target.encode())


def release_keep(store: ObjectStore, server: str, backup_id: str) -> bool:
    """Remove the annotation; True when there was one."""
    key = ServerLayout(server).keep_annotation(backup_id)
    existed = store.exists(key)
    if existed:
        store.delete_many([key])
    return existed


__all__ = [
    "KEEP_FULL",
    "KEEP_STANDALONE",
    "NOKEEP",
    "TARGETS",
    "normalise_target",
    "read_keep",
    "release_keep",
    "set_keep",
]
