"""The logical backups of a server: list, find, delete. Their own series beside base/.

A backup is listed once its `logical.json` exists (it is written last); a directory
without one is what an interrupted backup left and is never offered for restore.
Retention of physical backups never sees these (it lists base/ only).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import unquote

from core.catalog.copies import forget_copies
from core.catalog.objectlock import bucket_has_object_lock, locked_objects
from core.encryption import open_object
from core.errors import DecryptionFailed, InputError, ObjectNotFound, OperationFailed
from core.logical.attempt import refuse_if_running
from core.logical.layout import GLOBALS, LogicalLayout, is_logical_id
from core.logical.manifest import LogicalManifest, parse_manifest
from core.storage import CommonPrefix, ObjectInfo, ObjectStore

log = logging.getLogger("pgvault.logical")

LATEST = ("latest", "last")
LOCKED = "LOCKED"  # an encrypted manifest this process holds no key for


@dataclass(frozen=True)
class LockedFacts:
    """What a LOCKED backup's object names and sizes tell without a key (as for a physical
    backup): its databases, stored size and pg_dump compression."""

    databases: tuple[str, ...]
    stored_size: int  # its dump files, as a manifest's stored_size counts them
    compression: str | None  # gzip, lz4, zstd; None: no compressed file
    compression_known: bool  # False: no data file to tell it by
    globals_file: str | None


@dataclass(frozen=True)
class LogicalListing:
    """The finished logical backups (LOCKED ones as placeholders), oldest first; the
    backups whose logical.json exists but cannot be read (BROKEN), with why."""

    backups: tuple[LogicalManifest, ...]
    broken: tuple[tuple[str, str], ...] = ()
    locked: Mapping[str, LockedFacts] = field(default_factory=dict)


def read_logical(store: ObjectStore, server: str) -> LogicalListing:
    """Every finished logical backup of the server, the broken ones apart."""
    layout = LogicalLayout(server)
    found, broken, facts = [], [], {}
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
            facts[backup_id] = locked_facts(store, layout, backup_id)
        except OperationFailed as exc:
            broken.append((backup_id, str(exc)))
    return LogicalListing(
        tuple(sorted(found, key=lambda m: m.backup_id)), tuple(sorted(broken)), facts
    )


def list_logical(store: ObjectStore, server: str) -> tuple[LogicalManifest, ...]:
    """Every finished logical backup of the server, oldest first (a broken one is warned
    about and passed over)."""
    listing = read_logical(store, server)
    for backup_id, why in listing.broken:
        log.warning("logical backup %s is broken, passed over: %s", backup_id, why)
    return listing.backups


_CODECS = {".gz": "gzip", ".lz4": "lz4", ".zst": "zstd"}


def locked_facts(store: ObjectStore, layout: LogicalLayout, backup_id: str) -> LockedFacts:
    """A LOCKED backup's facts from one listing of its objects (names stay clear)."""
    dumps = layout.backup_prefix(backup_id) + "db/"
    databases: dict[str, None] = {}
    size, codecs, data_files, globals_file = 0, set(), 0, None
    for o in store.list_objects(layout.backup_prefix(backup_id)):
        if o.key == layout.globals_sql(backup_id):
            globals_file = GLOBALS
        if not o.key.startswith(dumps) or "/" not in o.key[len(dumps) :]:
            continue
        dirname, name = o.key[len(dumps) :].split("/", 1)
        databases[unquote(dirname)] = None
        size += o.size
        if name != "toc.dat" and not name.endswith(".toc"):  # pg_dump's data files
            data_files += 1
            codecs |= {codec for ext, codec in _CODECS.items() if name.endswith(ext)}
    return LockedFacts(
        databases=tuple(databases),
        stored_size=size,
        compression=next(iter(codecs)) if len(codecs) == 1 else None,
        compression_known=len(codecs) == 1 or (data_files > 0 and not codecs),
        globals_file=globals_file,
    )


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
    listing = read_logical(store, server)
    for m in listing.backups:
        if m.status == LOCKED:  # a name or latest is found only in what the manifests hold
            get_logical(store, server, m.backup_id)  # raises why it is locked
    every = listing.backups
    backups = [m for m in every if database is None or any(d.name == database for d in m.databases)]
    named = backups if reference in LATEST else [m for m in every if m.name == reference]
    if len(named) > 1 and reference not in LATEST:
        # as for physical backups (barman's rule): never a silent choice
        ids = ", ".join(m.backup_id for m in named)
        raise InputError(f"several logical backups are named {reference!r}: {ids}; name one by ID")
    found = named[-1] if named else None
    for backup_id, why in listing.broken:  # it may be what was asked for: never passed silently
        if found is None or backup_id > found.backup_id:
            instead = f"{reference} is {found.backup_id}" if found else "it is not searched"
            log.warning(
                "logical backup %s is broken, passed over (%s): %s", backup_id, instead, why
            )
    if found is not None:
        return found
    if reference in LATEST:
        what = f" of database {database}" if database else ""
        raise ObjectNotFound(f"no logical backup{what} for server {server}")
    raise ObjectNotFound(f"no logical backup named {reference!r} for server {server}")


@dataclass(frozen=True)
class LogicalDeletion:
    backup_id: str
    objects: int
    size: int
    #: unfinished uploads a killed backup left (S3 multipart, a local `.pgvault-partial`)
    uploads: int = 0


def delete_logical(
    store: ObjectStore, server: str, reference: str, unfinished: bool = False
) -> LogicalDeletion:
    """Delete one logical backup: its manifest first (it stops being restorable), then the
    rest. `unfinished`: also what a killed backup left without a manifest (by ID)."""
    layout = LogicalLayout(server)
    backup_id, objects, pending = _objects(store, server, reference, unfinished)
    _refuse_locked(store, server, backup_id, objects)
    store.delete_many([layout.manifest(backup_id)])
    # Unfinished uploads are no objects: once the backup's objects are gone nothing lists
    # them, and they would stay (and be billed) for ever. Aborted as a resume aborts them.
    aborted = store.abort_pending_uploads(layout.backup_prefix(backup_id)) if pending else 0
    store.delete_many(o.key for o in objects)
    forget_copies(store, server, [backup_id])
    return LogicalDeletion(backup_id, len(objects), sum(o.size for o in objects), aborted)


def _refuse_locked(
    store: ObjectStore, server: str, backup_id: str, objects: list[ObjectInfo]
) -> None:
    """In an S3 bucket with Object Lock enabled, a backup with a locked object stays: a
    delete there would only hide the locked versions behind delete markers."""
    if not bucket_has_object_lock(store):
        return
    locked = locked_objects(store, (o.key for o in objects))
    if locked:
        more = f" (and {len(locked) - 1} more locked object(s))" if len(locked) > 1 else ""
        raise OperationFailed(
            f"logical backup {backup_id} of server {server} is under S3 Object Lock: "
            f"{locked[0].describe()}{more}; nothing was deleted"
        )


def plan_delete_logical(
    store: ObjectStore, server: str, reference: str, unfinished: bool = False
) -> LogicalDeletion:
    """What delete_logical would delete (--dry-run)."""
    backup_id, objects, pending = _objects(store, server, reference, unfinished)
    return LogicalDeletion(backup_id, len(objects), sum(o.size for o in objects), pending)


def _objects(
    store: ObjectStore, server: str, reference: str, unfinished: bool
) -> tuple[str, list[ObjectInfo], int]:
    """The backup's ID, objects and unfinished uploads. By ID its manifest is not read (an
    encrypted one needs no key); a name or latest is found in the manifests."""
    layout = LogicalLayout(server)
    if is_logical_id(reference):
        backup_id = reference
    else:
        backup_id = resolve_logical(store, server, reference).backup_id
    prefix = layout.backup_prefix(backup_id)
    objects = list(store.list_objects(prefix))
    pending = len(store.list_pending_uploads(prefix))
    finished = any(o.key == layout.manifest(backup_id) for o in objects)
    left = bool(objects or pending)  # a killed backup may have left only unfinished uploads
    if not left or not (finished or unfinished):
        hint = " (an unfinished one: --force removes it)" if left else ""
        raise ObjectNotFound(f"logical backup {backup_id} not found for server {server}{hint}")
    if not finished:  # --force never pulls the objects from under a running backup
        what = f"cannot delete logical backup {backup_id} of server {server}"
        refuse_if_running(store, layout, backup_id, what)
    return backup_id, objects, pending


def manifest_json(manifest: LogicalManifest) -> dict[str, Any]:
    data = asdict(manifest)
    data["stored_size"] = manifest.stored_size
    return data


def summary_row(m: LogicalManifest, facts: LockedFacts | None = None) -> dict[str, Any]:
    """One logical backup as backup-list shows it; a LOCKED one with what its object names
    and sizes tell (`facts`), the rest null: unknown, never a false 0."""
    if m.status == LOCKED:
        return _locked_row(m, facts)
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
        "data_size": m.data_size,
        "compression": m.compression,
        "globals": m.globals_file,
        "server_version": m.server_version,
        "pg_dump_version": m.pg_dump_version,
        "encrypted": m.encrypted,
    }


def _locked_row(m: LogicalManifest, facts: LockedFacts | None) -> dict[str, Any]:
    return {
        "backup_id": m.backup_id,
        "name": None,
        "status": m.status,
        "kind": m.kind,
        "databases": list(facts.databases) if facts else None,
        "tables": None,
        "patterns": None,
        "begin_time": None,
        "end_time": None,
        "stored_size": facts.stored_size if facts else None,
        "data_size": None,
        "compression": facts.compression if facts else None,
        "globals": facts.globals_file if facts else None,
        "server_version": None,
        "pg_dump_version": None,
        "encrypted": True,
    }
