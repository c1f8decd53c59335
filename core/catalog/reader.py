"""The read side of a server's catalog: its backups, how to name one, and what each stores.

Works on catalogs written by barman-cloud (no pgvault.json) as on pgvault's own. Listing
is barman-cloud's: `base/` with a delimiter, then each `backup.info`; an unreadable one is
warned about, skipped and recorded in `broken` (listed as such), a directory without one
(what barman-cloud-backup-delete leaves of a pgvault backup) is not a backup.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from core.catalog.backup_info import DONE, FAILED, STARTED, BackupInfo, Tablespace, parse
from core.catalog.copies import read_copies
from core.catalog.keep import read_keep
from core.catalog.layout import (
    BACKUP_ID_RE,
    ENCRYPTED_SUFFIX,
    PG_MANIFEST,
    PGVAULT_MANIFEST,
    ArchiveRef,
    ServerLayout,
    parse_archive_name,
)
from core.catalog.manifest import PgvaultManifest, load_pgvault, new_checksum
from core.catalog.owner import Verdict, owner_verdict
from core.catalog.tier import ARCHIVE, read_tier
from core.encryption import open_object
from core.errors import InputError, ObjectNotFound, PgvaultError, StorageError
from core.storage import CommonPrefix, ObjectInfo, ObjectStore

log = logging.getLogger("pgvault.catalog")

LATEST = ("latest", "last", "latest-full", "last-full")
OLDEST = ("oldest", "first")
LAST_FAILED = "last-failed"
READ_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True)
class StoredArchive:
    """One archive object of a backup as the store lists it."""

    key: str  # relative to the destination
    ref: ArchiveRef
    size: int

    @property
    def filename(self) -> str:
        return self.ref.filename()


@dataclass(frozen=True)
class ArchiveSet:
    """PGDATA ('data') or one tablespace: its parts in order (data.tar, data_0001.tar...)."""

    name: str
    tablespace: Tablespace | None
    parts: tuple[StoredArchive, ...]


class Catalog:
    """The backups of one server under a destination (listing cached per instance)."""

    def __init__(self, store: ObjectStore, server: str) -> None:
        self.store = store
        self.layout = ServerLayout(server)
        self.server = server
        self._backups: list[BackupInfo] | None = None
        self._objects: dict[str, tuple[ObjectInfo, ...]] | None = None
        self._keeps: dict[str, str] | None = None
        self._archived: set[str] | None = None
        self._copies: dict[str, tuple[str, ...]] | None = None
        self.unreadable: list[str] = []
        #: backup ID -> why its backup.info cannot be read (listed as broken)
        self.broken: dict[str, str] = {}
        self._verdicts: dict[str, Verdict] = {}

    # ---- listing ---------------------------------------------------------------------------

    def backups(self) -> list[BackupInfo]:
        """Every readable backup, oldest first (backup IDs sort by time)."""
        if self._backups is None:
            ids = [
                item.prefix.rstrip("/").rsplit("/", 1)[-1]
                for item in self.store.list_entries(self.layout.base_prefix, delimiter="/")
                if isinstance(item, CommonPrefix)
            ]
            with ThreadPoolExecutor(max_workers=8, thread_name_prefix="pgvault-list") as pool:
                found = list(pool.map(self._read_info, ids))
            self._backups = sorted((i for i in found if i is not None), key=lambda i: i.backup_id)
        return list(self._backups)

    def _read_info(self, backup_id: str) -> BackupInfo | None:
        try:
            return self.get(backup_id)
        except ObjectNotFound:
            return None
        except PgvaultError as exc:
            if exc.exit_code != 1:
                raise
            log.warning("skipping backup %s: %s", backup_id, exc)
            self.unreadable.append(backup_id)
            self.broken[backup_id] = str(exc)
            return None

    def get(self, backup_id: str) -> BackupInfo:
        """The backup.info of one backup; ObjectNotFound when there is none."""
        try:
            raw = self.store.get_bytes(self.layout.backup_info(backup_id))
        except ObjectNotFound:
            raise ObjectNotFound(
                f"backup {backup_id} not found for server {self.server} in {self.store.describe()}"
            ) from None
        return parse(backup_id, raw)

    def owner(self, info: BackupInfo) -> Verdict | None:
        """For a STARTED backup, whether its owner is provably gone (None for the others)."""
        if info.status != STARTED:
            return None
        if info.backup_id not in self._verdicts:
            fallback = None
            try:
                manifest = self.pgvault_manifest(info.backup_id)
                if manifest is not None and manifest.state == "running":
                    fallback = manifest.lease
            except PgvaultError:
                pass  # judged by the lease object alone
            self._verdicts[info.backup_id] = owner_verdict(
                self.store, self.layout, info.backup_id, fallback
            )
        return self._verdicts[info.backup_id]

    def abandoned(self, backups: list[BackupInfo]) -> set[str]:
        """The STARTED backups among `backups` whose owner is provably gone."""
        found = set()
        for info in backups:
            verdict = self.owner(info)
            if verdict is not None and verdict.abandoned:
                found.add(info.backup_id)
        return found

    def objects(self) -> dict[str, tuple[ObjectInfo, ...]]:
        """Every object under base/, by backup ID (one recursive listing, cached)."""
        if self._objects is None:
            found: dict[str, list[ObjectInfo]] = {}
            for obj in self.store.list_objects(self.layout.base_prefix):
                backup_id = self.layout.backup_id_of(obj.key)
                if backup_id is not None:
                    found.setdefault(backup_id, []).append(obj)
            self._objects = {k: tuple(v) for k, v in found.items()}
        return self._objects

    def keep_targets(self) -> dict[str, str]:
        """Backup ID -> keep target ('full' or 'standalone') of every annotated backup.

        As barman-cloud: the recursive listing says which annotations exist, and only
        those are read.
        """
        if self._keeps is None:
            annotated = [
                backup_id
                for backup_id, objects in self.objects().items()
                if any(o.key == self.layout.keep_annotation(backup_id) for o in objects)
            ]
            keeps: dict[str, str] = {}
            for backup_id in annotated:
                target = read_keep(self.store, self.server, backup_id)
                if target is not None:
                    keeps[backup_id] = target
            self._keeps = keeps
        return dict(self._keeps)

    def archived(self) -> set[str]:
        """The backups whose record puts them in the archive tier (core.catalog.tier, cached)."""
        if self._archived is None:
            self._archived = {
                backup_id
                for backup_id, objects in self.objects().items()
                if any(o.key == self.layout.tier_annotation(backup_id) for o in objects)
                and read_tier(self.store, self.server, backup_id) == ARCHIVE
            }
        return set(self._archived)

    def encrypted(self) -> set[str]:
        """The backups whose archives are age files (their names say so: no read)."""
        return {backup_id for backup_id in self.objects() if self.is_encrypted(backup_id)}

    def is_encrypted(self, backup_id: str) -> bool:
        """Whether the backup's archives are age files (from the cached listing)."""
        return any(o.key.endswith(ENCRYPTED_SUFFIX) for o in self.objects().get(backup_id, ()))

    def copies(self) -> dict[str, tuple[str, ...]]:
        """Backup ID -> the public URLs of its second copies (core.catalog.copies, cached)."""
        if self._copies is None:
            self._copies = read_copies(self.store, self.server)
        return dict(self._copies)

    def keep_target(self, backup_id: str) -> str | None:
        """The keep target of one backup, read from the store (not the cache)."""
        return read_keep(self.store, self.server, backup_id)

    def forget(self, backup_id: str) -> None:
        """Drop a deleted backup from the cached listing."""
        if self._backups is not None:
            self._backups = [b for b in self._backups if b.backup_id != backup_id]
        if self._objects is not None:
            self._objects.pop(backup_id, None)
        if self._keeps is not None:
            self._keeps.pop(backup_id, None)

    # ---- naming -----------------------------------------------------------------------------

    def resolve(self, reference: str) -> BackupInfo:
        """A backup ID, a --name, or latest/last, oldest/first, last-failed."""
        if BACKUP_ID_RE.match(reference):
            return self.get(reference)
        if reference == "auto":
            raise InputError("'auto' chooses a backup from recovery targets: name a backup")
        backups = self.backups()
        chosen: BackupInfo | None = None
        if reference in LATEST or reference in OLDEST:
            # A DONE backup whose deletion began is FAILED first (DELETING_ERROR).
            done = [b for b in backups if b.status == DONE]
            if done:
                chosen = done[-1] if reference in LATEST else done[0]
        elif reference == LAST_FAILED:
            failed = [b for b in backups if b.status == FAILED and not b.deleting]
            chosen = failed[-1] if failed else None
        else:
            named = [b for b in backups if b.backup_name == reference]
            if len(named) > 1:
                ids = ", ".join(b.backup_id for b in named)
                raise InputError(f"several backups are named {reference!r}: {ids}")
            chosen = named[0] if named else None
        if chosen is None:
            raise ObjectNotFound(
                f"no backup matches {reference!r} for server {self.server} "
                f"in {self.store.describe()}"
            )
        return chosen

    # ---- contents ----------------------------------------------------------------------------

    def archives(self, info: BackupInfo) -> list[ArchiveSet]:
        """PGDATA's archive set then each tablespace's, parts in order; gaps are errors.

        A snapshot backup has none: its data is in its disks' snapshots."""
        if info.snapshots_info:
            return []
        prefix = self.layout.backup_prefix(info.backup_id)
        groups: dict[str, list[StoredArchive]] = {}
        for obj in self.store.list_objects(prefix):
            filename = obj.key[len(prefix) :]
            if "/" in filename:
                continue
            ref = parse_archive_name(filename)
            if ref is None:
                if filename.split("_")[0].split(".")[0] == "data" or filename[:1].isdigit():
                    log.warning("skipping %s: not an archive pgvault can read", obj.key)
                continue
            groups.setdefault(ref.name, []).append(StoredArchive(obj.key, ref, obj.size))
        tablespaces = {str(t.oid): t for t in info.tablespaces or ()}
        sets = []
        for name in ["data", *tablespaces]:
            parts = sorted(groups.pop(name, []), key=lambda a: a.ref.part)
            if not parts:
                what = "PGDATA" if name == "data" else f"tablespace {tablespaces[name].name}"
                raise StorageError(f"backup {info.backup_id} has no archive for {what}")
            numbers = [p.ref.part for p in parts]
            if numbers != list(range(len(parts))):
                raise StorageError(
                    f"backup {info.backup_id}: archive parts of {name} are not contiguous "
                    f"(found {', '.join(p.filename for p in parts)})"
                )
            sets.append(ArchiveSet(name, tablespaces.get(name), tuple(parts)))
        for name in groups:
            log.warning("backup %s: archive %s matches no tablespace", info.backup_id, name)
        return sets

    def pgvault_manifest(self, backup_id: str) -> PgvaultManifest | None:
        """pgvault.json of a backup; None for a backup barman-cloud wrote."""
        try:
            raw = self.store.get_bytes(self.layout.backup_file(backup_id, PGVAULT_MANIFEST))
        except ObjectNotFound:
            return None
        return load_pgvault(open_object(self.store, self.server, raw, self._label(backup_id)))

    def postgres_manifest(self, backup_id: str) -> bytes | None:
        """The PostgreSQL-format backup_manifest; None when the backup has none."""
        key = self.layout.backup_file(backup_id, PG_MANIFEST)
        try:
            raw = self.store.get_bytes(key)
        except ObjectNotFound:
            return None
        return open_object(self.store, self.server, raw, f"{key}")

    def _label(self, backup_id: str) -> str:
        return self.layout.backup_file(backup_id, PGVAULT_MANIFEST)


def check_archives(
    catalog: Catalog,
    backup_id: str,
    advance: Callable[[int], None] | None = None,
) -> list[str]:
    """Read every stored archive and compare size and checksum with pgvault.json.

    Returns one line per problem (empty when every byte is as recorded).
    """
    manifest = catalog.pgvault_manifest(backup_id)
    if manifest is None:
        return [f"backup {backup_id} has no pgvault.json: nothing to check against"]
    info = catalog.get(backup_id)
    stored = {a.filename: a for s in catalog.archives(info) for a in s.parts}
    problems = []
    for record in manifest.archives:
        archive = stored.pop(record.filename, None)
        if archive is None:
            problems.append(f"{record.filename}: missing from the store")
            continue
        checksum = new_checksum(manifest.checksum_algorithm)
        size = 0
        with catalog.store.open_reader(archive.key) as reader:
            while True:
                chunk = reader.read(READ_SIZE)
                if not chunk:
                    break
                checksum.update(chunk)
                size += len(chunk)
                if advance is not None:
                    advance(len(chunk))
        if size != record.size:
            problems.append(f"{record.filename}: {size} bytes stored, {record.size} recorded")
        elif checksum.hexdigest() != record.checksum:
            problems.append(
                f"{record.filename}: checksum {checksum.hexdigest()} does not match the "
                f"recorded {manifest.checksum_algorithm} {record.checksum}"
            )
    for filename in stored:
        problems.append(f"{filename}: stored but not recorded in pgvault.json")
    return problems


__all__ = [
    "ArchiveSet",
    "Catalog",
    "ObjectInfo",
    "StoredArchive",
    "check_archives",
]
