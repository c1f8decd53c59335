"""Chains of backups: a full backup and the incrementals built on it, as pgvault.json says.

An incremental's pgvault.json names its kind, parent and chain (every ancestor, the full
backup first); its archive sets are `incremental_data.tar...`, `incremental_<oid>.tar...`
(names barman-cloud never takes for a backup's archives), listed here from the record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from core.catalog.backup_info import BackupInfo
from core.catalog.layout import ENCRYPTED_SUFFIX, TAR_SUFFIXES, ArchiveRef
from core.catalog.manifest import PgvaultManifest
from core.catalog.reader import ArchiveSet, Catalog, StoredArchive
from core.errors import IntegrityError, PgvaultError, StorageError

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
    for info in catalog.backups():
        if not info.parent_backup_id:
            continue
        try:
            manifest = catalog.pgvault_manifest(info.backup_id)
        except StorageError:
            manifest = None
        chain = chain_of(manifest) or (info.parent_backup_id,)
        for ancestor in chain:
            if wanted is None or ancestor in wanted:
                found.setdefault(ancestor, []).append(info.backup_id)
    return found


def kinds(catalog: Catalog, infos: Iterable[BackupInfo]) -> dict[str, str]:
    """Backup ID -> incremental or differential, for each backup naming a parent (pgvault.json
    tells which; one that cannot be read is an incremental, as backup.info alone says)."""
    found: dict[str, str] = {}
    for info in infos:
        if not info.parent_backup_id:
            continue
        try:
            manifest = catalog.pgvault_manifest(info.backup_id)
        except PgvaultError:  # damaged or undecryptable: what backup.info says
            manifest = None
        kind = kind_of(manifest)
        found[info.backup_id] = INCREMENTAL if kind == FULL else kind
    return found


#: a tree's drawing: a child, the last child, and what stands under a parent's column
BRANCH, LAST_BRANCH, PIPE, BLANK = "├─ ", "└─ ", "│  ", "   "


def tree_lines(
    backups: Sequence[tuple[str, str | None]], newest_first: bool = False
) -> list[tuple[str, str]]:
    """(backup ID, parent ID) pairs as a tree, each backup under its parent: (ID, prefix).

    Roots (full backups, and any whose parent is not listed) in ID order, oldest first or
    newest first; each one's incrementals under it, oldest first, so a chain reads from its
    full backup down as restore builds it. The prefix is `├─ `/`└─ ` with `│  ` continuing.
    """
    listed = {backup_id for backup_id, _ in backups}
    children: dict[str | None, list[str]] = {}
    for backup_id, parent in sorted(backups):
        children.setdefault(parent if parent in listed else None, []).append(backup_id)
    lines: list[tuple[str, str]] = []
    seen: set[str] = set()

    def walk(backup_id: str, lead: str, prefix: str) -> None:
        seen.add(backup_id)
        lines.append((backup_id, prefix))
        below = [c for c in children.get(backup_id, []) if c not in seen]
        for index, child in enumerate(below):
            last = index == len(below) - 1
            walk(child, lead + (BLANK if last else PIPE), lead + (LAST_BRANCH if last else BRANCH))

    roots = children.get(None, [])
    for root in reversed(roots) if newest_first else roots:
        walk(root, "", "")
    for backup_id, _ in sorted(backups):  # parents in a loop (a damaged catalog): listed all
        if backup_id not in seen:
            walk(backup_id, "", "")
    return lines


__all__ = [
    "DIFFERENTIAL",
    "FULL",
    "INCREMENTAL",
    "INCREMENT_PREFIX",
    "PAGE_LSN",
    "WAL_SUMMARY",
    "chain_of",
    "dependents",
    "kind_of",
    "kinds",
    "link_sets",
    "tree_lines",
]
