"""The logical backups of a server: list, find, delete. Their own series beside base/.

A backup is listed once its `logical.json` exists (it is written last); a directory
without one is what an interrupted backup left and is never offered for restore.
Retention of physical backups never sees these (it lists base/ only).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from core.catalog.copies import forget_copies
from core.encryption import open_object
from core.errors import DecryptionFailed, ObjectNotFound, OperationFailed
from core.logical.attempt import refuse_if_running
from core.logical.layout import LogicalLayout, is_logical_id
from core.logical.manifest import LogicalManifest, parse_manifest
from core.storage import CommonPrefix, ObjectInfo, ObjectStore

log = logging.getLogger("pgvault.logical")

LATEST = ("latest", "last")
LOCKED = "LOCKED"  # an encrypted manifest this process holds no key for


def list_logical(store: ObjectStore, server: str) -> tuple[LogicalManifest, ...]:
    """Every finished logical backup of the server, oldest first."""
    layout = LogicalLayout(server)
    found = []
    for item in store.list_entries(layout.prefix, delimiter="/"):
        if not isinstance(item, CommonPrefix):
            continue
        backup_id = item.prefix.rstrip("/").rsplit("/", 1)[-1]
        if not is_logical_id(backup_id):
            continue
        try:
            found.append(get_logical(store, server, backup_id))
        except ObjectNotFound:
            continue  # unfinished: no manifest yet
        except DecryptionFailed:
            found.append(locked(server, backup_id))  # listed as backup.info lists a physical one
        except OperationFailed as exc:
            log.warning("skipping logical backup %s: %s", backup_id, exc)
    return tuple(sorted(found, key=lambda m: m.backup_id))


def get_logical(store: ObjectStore, server: str, backup_id: str) -> LogicalManifest:
    key = LogicalLayout(server).manifest(backup_id)
    try:
        raw = store.get_bytes(key)
    except ObjectNotFound:
        raise ObjectNotFound(
            f"logical backup {backup_id} not found for server {server} in {store.describe()}"
        ) from None
    return parse_manifest(open_object(store, server, raw, key), key)


def locked(server: str, backup_id: str) -> LogicalManifest:
    """An encrypted backup's manifest without the key: its ID and nothing it holds."""
    return placeholder(server, backup_id, LOCKED, encrypted=True)


def placeholder(
    server: str, backup_id: str, status: str, encrypted: bool = False
) -> LogicalManifest:
    """A backup whose logical.json cannot be read (LOCKED) or does not exist yet (STARTED,
    ABANDONED): its ID and status, and nothing it holds."""
    return LogicalManifest(
        backup_id=backup_id,
        server=server,
        name=None,
        started="",
        finished="",
        pgvault_version="",
        server_version=0,
        server_version_text="",
        pg_dump_version="",
        compression=None,
        jobs=0,
        databases=(),
        encrypted=encrypted,
        status=status,
    )


def resolve_logical(
    store: ObjectStore, server: str, reference: str, database: str | None = None
) -> LogicalManifest:
    """An ID, a name, or latest (the newest holding `database` when given). A name finds
    its backup whatever it holds, as an ID does: the caller says which database is missing."""
    if is_logical_id(reference):
        return get_logical(store, server, reference)
    every = list_logical(store, server)
    for m in every:
        if m.status == LOCKED:  # a name or latest is found only in what the manifests hold
            get_logical(store, server, m.backup_id)  # raises why it is locked
    backups = [m for m in every if database is None or any(d.name == database for d in m.databases)]
    if reference in LATEST:
        if not backups:
            what = f" of database {database}" if database else ""
            raise ObjectNotFound(f"no logical backup{what} for server {server}")
        return backups[-1]
    named = [m for m in every if m.name == reference]
    if not named:
        raise ObjectNotFound(f"no logical backup named {reference!r} for server {server}")
    return ([m for m in named if m in backups] or named)[-1]


@dataclass(frozen=True)
class LogicalDeletion:
    backup_id: str
    objects: int
    size: int


def delete_logical(
    store: ObjectStore, server: str, reference: str, unfinished: bool = False
) -> LogicalDeletion:
    """Delete one logical backup: its manifest first (it stops being restorable), then the
    rest. `unfinished`: also what a killed backup left without a manifest (by ID)."""
    layout = LogicalLayout(server)
    backup_id, objects = _objects(store, server, reference, unfinished)
    store.delete_many([layout.manifest(backup_id)])
    store.delete_many(o.key for o in objects)
    forget_copies(store, server, [backup_id])
    return LogicalDeletion(backup_id, len(objects), sum(o.size for o in objects))


def plan_delete_logical(
    store: ObjectStore, server: str, reference: str, unfinished: bool = False
) -> LogicalDeletion:
    """What delete_logical would delete (--dry-run)."""
    backup_id, objects = _objects(store, server, reference, unfinished)
    return LogicalDeletion(backup_id, len(objects), sum(o.size for o in objects))


def _objects(
    store: ObjectStore, server: str, reference: str, unfinished: bool
) -> tuple[str, list[ObjectInfo]]:
    """The backup's ID and objects. By ID its manifest is not read (an encrypted one needs
    no key); a name or latest is found in the manifests."""
    layout = LogicalLayout(server)
    if is_logical_id(reference):
        backup_id = reference
    else:
        backup_id = resolve_logical(store, server, reference).backup_id
    objects = list(store.list_objects(layout.backup_prefix(backup_id)))
    finished = any(o.key == layout.manifest(backup_id) for o in objects)
    if not objects or not (finished or unfinished):
        hint = " (an unfinished one: --force removes it)" if objects else ""
        raise ObjectNotFound(f"logical backup {backup_id} not found for server {server}{hint}")
    if not finished:  # --force never pulls the objects from under a running backup
        what = f"cannot delete logical backup {backup_id} of server {server}"
        refuse_if_running(store, layout, backup_id, what)
    return backup_id, objects


def manifest_json(manifest: LogicalManifest) -> dict[str, Any]:
    data = asdict(manifest)
    data["stored_size"] = manifest.stored_size
    return data


def summary_row(m: LogicalManifest) -> dict[str, Any]:
    """One logical backup as backup-list shows it."""
    return {
        "backup_id": m.backup_id,
        "name": m.name,
        "status": m.status,
        "kind": m.kind,
        "databases": [d.name for d in m.databases],
        "tables": sum(len(d.tables) for d in m.databases),
        "patterns": [p for d in m.databases for p in d.patterns],
        "begin_time": m.started,
        "end_time": m.finished,
        "stored_size": m.stored_size,
        "data_size": sum(d.size for d in m.databases),
        "compression": m.compression,
        "globals": m.globals_file,
        "server_version": m.server_version,
        "pg_dump_version": m.pg_dump_version,
    }
