"""Chains of backups: a full backup and the incrementals built on it, as pgvault.json says.

An incremental's pgvault.json names its kind, parent and chain (every ancestor, the full
backup first); its archive sets are `incremental_data.tar...`, `incremental_<oid>.tar...`
(names barman-cloud never takes for a backup's archives), listed here from the record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from core.catalog.backup_info import BackupInfo
from core.catalog.layout import ENCRYPTED_SUFFIX, TAR_SUFFIXES, ArchiveRef, ServerLayout
from core.catalog.manifest import PgvaultManifest
from core.catalog.reader import ArchiveSet, Catalog, StoredArchive
from core.errors import IntegrityError, ObjectNotFound, PgvaultError
from core.storage import ObjectStore

FULL = "full"
INCREMENTAL = "incremental"
DIFFERENTIAL = "differential"
PAGE_LSN = "page-lsn"
WAL_SUMMARY = "wal-summary"
INCREMENT_PREFIX = "incremental_"  # archive sets barman-cloud never reads (not data*/<oid>*)


def kind_of(manifest: PgvaultManifest | None) -> str:
    """full, incremental or differential, as pgvault.json records it."""
    record = manifest.incremental if manifest else None
    if not record:
        return FULL
    return str(record.get("kind", FULL))


def chain_of(manifest: PgvaultManifest | None) -> tuple[str, ...]:
    """A backup's ancestors, full first (empty for a full backup)."""
    if manifest is None or kind_of(manifest) == FULL:
        return ()
    record = manifest.incremental or {}
    return tuple(str(i) for i in record.get("chain", ()))


def link_sets(
    catalog: Catalog, info: BackupInfo, manifest: PgvaultManifest
) -> tuple[ArchiveSet, ...]:
    """A backup's archive sets as pgvault.json records them; a part not stored is an error."""
    layout = catalog.layout
    prefix = layout.backup_prefix(info.backup_id)
    stored = {o.key: o.size for o in catalog.store.list_objects(prefix)}
    groups: dict[str, list[StoredArchive]] = {}
    for record in manifest.archives:
        key = layout.backup_file(info.backup_id, record.filename)
        if key not in stored:
            raise IntegrityError(
                f"backup {info.backup_id}: {record.filename} is recorded in pgvault.json "
                "but not stored"
            )
        encrypted = record.filename.endswith(ENCRYPTED_SUFFIX)
        plain = record.filename.removesuffix(ENCRYPTED_SUFFIX)
        suffix = max((s for s in TAR_SUFFIXES if plain.endswith(s)), key=len)
        ref = ArchiveRef(record.name, record.part, TAR_SUFFIXES[suffix], encrypted)
        name = record.name.removeprefix(INCREMENT_PREFIX)
        groups.setdefault(name, []).append(StoredArchive(key, ref, stored[key]))
    tablespaces = {str(t.oid): t for t in info.tablespaces or ()}
    order = sorted(groups, key=lambda n: (n != "data", n))
    return tuple(
        ArchiveSet(n, tablespaces.get(n), tuple(sorted(groups[n], key=lambda a: a.ref.part)))
        for n in order
    )


def dependents(catalog: Catalog, backup_ids: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Backup ID -> the backups whose chain holds it (newest last); only incrementals are read."""
    wanted = set(backup_ids) if backup_ids is not None else None
    found: dict[str, list[str]] = {}
    parents = parent_links(catalog)
    for info in catalog.backups():
        if not info.parent_backup_id:
            continue
        try:
            manifest = catalog.pgvault_manifest(info.backup_id)
        except PgvaultError:  # damaged, or encrypted and no key here: backup.info's parents
            manifest = None
        chain = chain_of(manifest) or ancestors(info.backup_id, parents)
        for ancestor in chain:
            if wanted is None or ancestor in wanted:
                found.setdefault(ancestor, []).append(info.backup_id)
    return found


def parent_links(catalog: Catalog) -> dict[str, str | None]:
    """Backup ID -> its parent, as the clear backup.info files say (no key needed)."""
    return {info.backup_id: info.parent_backup_id for info in catalog.backups()}


def ancestors(backup_id: str, parents: dict[str, str | None]) -> tuple[str, ...]:
    """A backup's ancestors by backup.info's parent links, oldest first (to the first one
    missing, which is kept: the chain needs it). What pgvault.json's chain says, without it."""
    found: list[str] = []
    parent = parents.get(backup_id)
    while parent is not None and parent not in found:
        found.append(parent)
        parent = parents.get(parent)
    return tuple(reversed(found))


def recorded_kind(catalog: Catalog, backup_id: str) -> str | None:
    """An incremental's kind as its clear `annotations/kind` says, read only when the cached
    listing has one (None without: written before pgvault recorded it there)."""
    key = catalog.layout.kind_annotation(backup_id)
    if not any(o.key == key for o in catalog.objects().get(backup_id, ())):
        return None
    try:
        raw = catalog.store.get_bytes(key)
    except ObjectNotFound:
        return None
    kind = raw.decode("utf-8", "replace").strip()
    return kind if kind in (INCREMENTAL, DIFFERENTIAL) else None


def write_kind(store: ObjectStore, layout: ServerLayout, backup_id: str, kind: str) -> None:
    """Record an incremental's kind in clear: listing an encrypted catalog needs no key."""
    store.put_bytes(layout.kind_annotation(backup_id), kind.encode())


def kinds(catalog: Catalog, infos: Iterable[BackupInfo]) -> dict[str, str]:
    """Backup ID -> incremental or differential, for each backup naming a parent (pgvault.json
    tells which; when it cannot be read, `annotations/kind`; else an incremental, as
    backup.info alone says)."""
    found: dict[str, str] = {}
    for info in infos:
        if not info.parent_backup_id:
            continue
        try:
            kind = kind_of(catalog.pgvault_manifest(info.backup_id))
        except PgvaultError:  # damaged or undecryptable: the clear record, or backup.info
            kind = recorded_kind(catalog, info.backup_id) or INCREMENTAL
        found[info.backup_id] = INCREMENTAL if kind == FULL else kind
    return found


#: a chain's drawing: a backup under its full one, and the chain's last backup
BRANCH, LAST_BRANCH = "├─ ", "└─ "


def tree_lines(
    backups: Sequence[tuple[str, str | None]], newest_first: bool = False
) -> list[tuple[str, str]]:
    """(backup ID, parent ID) pairs as chains: (ID, prefix), each full backup followed by
    every backup built on it, directly or not, oldest first (as restore applies them),
    prefixed `├─ ` and the last `└─ `: one level, as pgBackRest and SHOW BACKUP list them,
    so a long chain stays narrow (kinds and parents tell differentials and branches apart).

    Full backups, and those whose parent is not listed, in ID order, oldest or newest first.
    """
    parents = dict(backups)

    def root(backup_id: str) -> str:
        seen = {backup_id}
        parent = parents.get(backup_id)
        while parent is not None and parent in parents:
            if parent in seen:  # parents in a loop (a damaged catalog): one root for all
                return min(seen)
            seen.add(parent)
            backup_id, parent = parent, parents.get(parent)
        return backup_id

    chains: dict[str, list[str]] = {}
    for backup_id in sorted(parents):
        top = root(backup_id)
        chains.setdefault(top, [])
        if top != backup_id:
            chains[top].append(backup_id)
    lines: list[tuple[str, str]] = []
    for top in sorted(chains, reverse=newest_first):
        lines.append((top, ""))
        members = chains[top]
        lines += [(m, BRANCH) for m in members[:-1]] + [(m, LAST_BRANCH) for m in members[-1:]]
    return lines


__all__ = [
    "DIFFERENTIAL",
    "FULL",
    "INCREMENTAL",
    "INCREMENT_PREFIX",
    "PAGE_LSN",
    "WAL_SUMMARY",
    "ancestors",
    "chain_of",
    "dependents",
    "kind_of",
    "kinds",
    "link_sets",
    "parent_links",
    "recorded_kind",
    "tree_lines",
    "write_kind",
]
