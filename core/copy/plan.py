"""What a copy moves: the chosen backups (and the parents they build on), the WAL they
need, the server's key file, as one ordered list of object keys.

Order is what makes a half copy harmless: the key file and the WAL come first, then each
backup's objects, and the object that makes a backup exist last (`backup.info` for a
physical backup, `logical.json` for a logical one). A target that lost the copy midway
lists nothing that cannot be restored.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from core.catalog.backup_info import BackupInfo
from core.catalog.layout import BACKUP_INFO, ServerLayout
from core.catalog.reader import Catalog
from core.copy.resume import record_prefix
from core.encryption import KEYFILE
from core.errors import InputError, ObjectNotFound
from core.logical.layout import MANIFEST, LogicalLayout, is_logical_id
from core.postgres.walnames import DEFAULT_SEGMENT_SIZE
from core.storage import CommonPrefix, ObjectInfo, ObjectStore
from core.wal.check import missing_segments

#: a timeline history file: every copy takes them all (they are tiny and recovery needs them)
_HISTORY_SUFFIX = ".history"


@dataclass(frozen=True)
class CopyItem:
    """One object to copy; `seals` names the backup this object makes exist on the target."""

    key: str
    size: int
    seals: str | None = None
    #: the backup directory the object belongs to (None: WAL, the key file)
    backup_prefix: str | None = None


@dataclass(frozen=True)
class CopyPlan:
    physical: tuple[str, ...]  # backup IDs, oldest first (parents included)
    logical: tuple[str, ...]
    wal_files: int
    items: tuple[CopyItem, ...]
    #: WAL keys a backup needs to reach consistency (begin..end) that the source lacks
    missing_wal: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(item.size for item in self.items)


def plan_copy(
    store: ObjectStore,
    server: str,
    references: tuple[str, ...],
    everything: bool,
    whole_wal: bool,
) -> CopyPlan:
    """The plan for `references` (IDs, names, latest/oldest) or, with `everything`, every
    finished backup and the whole WAL archive from the oldest one on."""
    catalog = Catalog(store, server)
    physical_refs = tuple(r for r in references if not is_logical_id(r))
    logical = sorted(r for r in references if is_logical_id(r))
    if everything:
        chosen = [b for b in catalog.backups() if b.is_done]
        logical = list(_finished_logical(store, server))
        whole_wal = True
        if not chosen and not logical:
            raise ObjectNotFound(f"server {server} has no finished backup in {store.describe()}")
    else:
        chosen = [_done(catalog, catalog.resolve(r)) for r in physical_refs]
        for backup_id in logical:
            if not store.exists(LogicalLayout(server).manifest(backup_id)):
                raise ObjectNotFound(
                    f"logical backup {backup_id} not found for server {server} "
                    f"in {store.describe()}"
                )
    backups = _with_parents(catalog, chosen)
    items: list[CopyItem] = []
    keyfile = f"{server}/{KEYFILE}"
    with contextlib.suppress(ObjectNotFound):  # not found: not an encrypted server
        items.append(CopyItem(keyfile, store.head(keyfile).size))
    wal = _wal_items(store, server, backups, whole_wal)
    items += wal
    missing = _missing_wal(server, backups, wal)
    for info in backups:
        items += _backup_items(
            store, ServerLayout(server).backup_prefix(info.backup_id), BACKUP_INFO
        )
    for backup_id in logical:
        prefix = LogicalLayout(server).backup_prefix(backup_id)
        items += _backup_items(store, prefix, MANIFEST)
    return CopyPlan(
        physical=tuple(b.backup_id for b in backups),
        logical=tuple(logical),
        wal_files=len(wal),
        items=tuple(items),
        missing_wal=missing,
    )


def _done(catalog: Catalog, info: BackupInfo) -> BackupInfo:
    if not info.is_done:
        raise InputError(
            f"backup {info.backup_id} of {catalog.server} is {info.status}: "
            "only finished (DONE) backups are copied"
        )
    return info


def _with_parents(catalog: Catalog, chosen: list[BackupInfo]) -> list[BackupInfo]:
    """The backups and every ancestor an incremental among them restores through."""
    found: dict[str, BackupInfo] = {}
    for info in chosen:
        current: BackupInfo | None = info
        while current is not None and current.backup_id not in found:
            found[current.backup_id] = _done(catalog, current)
            parent = current.parent_backup_id
            current = catalog.get(parent) if parent else None
    return [found[k] for k in sorted(found)]


def _finished_logical(store: ObjectStore, server: str) -> list[str]:
    layout = LogicalLayout(server)
    ids = []
    for item in store.list_entries(layout.prefix, delimiter="/"):
        if isinstance(item, CommonPrefix):
            backup_id = item.prefix.rstrip("/").rsplit("/", 1)[-1]
            if is_logical_id(backup_id) and store.exists(layout.manifest(backup_id)):
                ids.append(backup_id)
    return sorted(ids)


def _backup_items(store: ObjectStore, prefix: str, sealing_file: str) -> list[CopyItem]:
    """A backup directory's objects, the one that makes it exist last."""
    objects: list[ObjectInfo] = sorted(store.list_objects(prefix), key=lambda o: o.key)
    # a copy killed into this store left its records: they are not the backup's
    objects = [o for o in objects if not o.key.startswith(record_prefix(prefix))]
    seal = prefix + sealing_file
    backup_id = prefix.rstrip("/").rsplit("/", 1)[-1]
    items = [CopyItem(o.key, o.size, backup_prefix=prefix) for o in objects if o.key != seal]
    items += [CopyItem(o.key, o.size, backup_id, prefix) for o in objects if o.key == seal]
    return items


def _wal_items(
    store: ObjectStore, server: str, backups: list[BackupInfo], whole_wal: bool
) -> list[CopyItem]:
    """History files, and the segments from each backup's begin to its end WAL (or, for
    point-in-time recovery past them, every segment from the oldest backup's begin on)."""
    ranges = [(b.begin_wal or "", b.end_wal or b.begin_wal or "") for b in backups]
    ranges = [(begin, end) for begin, end in ranges if begin]
    if not ranges:
        return []
    oldest = min(begin for begin, _ in ranges)
    layout = ServerLayout(server)
    wanted: list[CopyItem] = []
    for obj in sorted(store.list_objects(layout.wals_prefix), key=lambda o: o.key):
        parsed = layout.parse_wal(obj.key)
        if parsed is None:
            continue
        name, segment = parsed[0], parsed[0][:24]
        if (
            name.endswith(_HISTORY_SUFFIX)
            or (whole_wal and segment >= oldest)
            or any(begin <= segment <= end for begin, end in ranges)
        ):
            wanted.append(CopyItem(obj.key, obj.size))
    return wanted


def _missing_wal(server: str, backups: list[BackupInfo], wal: list[CopyItem]) -> tuple[str, ...]:
    """The keys of the segments between a backup's begin and end WAL that the source lacks:
    a copy without them lists a backup that cannot be restored."""
    layout = ServerLayout(server)
    archived = {p[0] for item in wal if (p := layout.parse_wal(item.key)) is not None}
    missing: list[str] = []
    for b in backups:
        if not b.begin_wal:
            continue
        end = b.end_wal or b.begin_wal
        timeline = b.timeline or int(b.begin_wal[:8], 16)
        size = b.xlog_segment_size or DEFAULT_SEGMENT_SIZE
        for gap in missing_segments([(b.begin_wal, end, timeline)], archived, size):
            missing += [layout.wal(name) for name in gap.missing if layout.wal(name) not in missing]
    return tuple(missing)
