"""The chain restore: an incremental and every backup it builds on, restored in one pass.

Links are read newest first. The newest (the backup asked for) lays out the directory:
its directories and whole files go through the ordinary extractor, its changed blocks
into their files. Every file it restores but does not hold whole is a `_Need`: the blocks
still missing, filled from older links as they stream by, each block written once (the
newest copy wins, as in pg_combinebackup). What no link holds stays zero, as
pg_combinebackup leaves never-written space; a non-relation file short of bytes fails.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.backup.blocks import from_runs, relation_file
from core.catalog.backup_info import BackupInfo
from core.catalog.chains import FULL, chain_of, kind_of, link_sets
from core.catalog.manifest import FileRecord, PgvaultManifest, new_checksum
from core.catalog.reader import ArchiveSet, Catalog
from core.errors import IntegrityError, ObjectNotFound, OperationFailed
from core.restore.extract import NOT_RESTORED, Destination

OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC


@dataclass(frozen=True)
class ChainLink:
    """One backup of a chain: what it records and its archive sets (by 'data' or OID)."""

    info: BackupInfo
    manifest: PgvaultManifest
    sets: tuple[ArchiveSet, ...]

    @property
    def records(self) -> dict[str, FileRecord]:
        return {f.path: f for f in self.manifest.files}

    @property
    def block_maps(self) -> dict[str, list[int]]:
        """Files stored as blocks: the block numbers, in the order they are stored."""
        record = self.manifest.incremental or {}
        if kind_of(self.manifest) == FULL:
            return {}
        return {
            str(path): list(from_runs(runs))
            for path, _s, _m, runs in record.get("files", ())
            if runs
        }


def plan_chain(
    catalog: Catalog, info: BackupInfo, manifest: PgvaultManifest | None
) -> tuple[ChainLink, ...]:
    """The links to restore, newest first; () for a full backup."""
    if manifest is None or kind_of(manifest) == FULL:
        return ()
    links = [ChainLink(info, manifest, link_sets(catalog, info, manifest))]
    for backup_id in reversed(chain_of(manifest)):
        try:
            older = catalog.get(backup_id)
        except ObjectNotFound:
            raise OperationFailed(
                f"backup {info.backup_id} cannot be restored: backup {backup_id} of its chain "
                "is missing (deleted out of band); restore an older full backup instead"
            ) from None
        older_manifest = catalog.pgvault_manifest(backup_id)
        if not older.is_done or older_manifest is None:
            raise OperationFailed(
                f"backup {info.backup_id} cannot be restored: backup {backup_id} of its chain "
                f"is {older.status}"
            )
        links.append(ChainLink(older, older_manifest, link_sets(catalog, older, older_manifest)))
    return tuple(links)


@dataclass
class _Need:
    """A file the restored backup has but does not hold whole: the blocks still missing."""

    path: str  # where it is written
    size: int
    mtime: float
    missing: set[int]
    created: bool = False


@dataclass
class Needs:
    """Every file still short of blocks, shared by the handlers of every part."""

    block_size: int
    files: dict[str, _Need] = field(default_factory=dict)  # by manifest path
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, target: ChainLink, where: dict[str, Destination], block_size: int) -> Needs:
        needs = cls(block_size)
        record = target.manifest.incremental or {}
        for path, size, mtime, _runs in record.get("files", ()):
            if "/" not in path and path in NOT_RESTORED:
                continue
            count = -(-int(size) // block_size)
            target_path = disk_path(str(path), where)
            needs.files[str(path)] = _Need(target_path, int(size), float(mtime), set(range(count)))
        return needs

    def take(self, manifest_path: str, block: int) -> _Need | None:
        """The file, if this block of it is still missing (and is now taken)."""
        with self.lock:
            need = self.files.get(manifest_path)
            if need is None or block not in need.missing:
                return None
            need.missing.discard(block)
            need.created = True
            return need

    def wants(self, manifest_path: str) -> bool:
        with self.lock:
            need = self.files.get(manifest_path)
            return need is not None and bool(need.missing)


def disk_path(manifest_path: str, where: dict[str, Destination]) -> str:
    """Where a manifest path is restored: under PGDATA, or its tablespace's location."""
    if manifest_path.startswith("pg_tblspc/"):
        oid, _, rest = manifest_path[len("pg_tblspc/") :].partition("/")
        if oid in where:
            return os.path.join(where[oid].root, rest)
    return os.path.join(where["data"].root, manifest_path)


def finish_needs(needs: Needs, owner: tuple[int, int] | None) -> list[str]:
    """Every needed file at its size, dated and owned; the warnings of blocks no link held."""
    warnings = []
    for manifest_path, need in sorted(needs.files.items()):
        os.makedirs(os.path.dirname(need.path), 0o700, exist_ok=True)
        fd = os.open(need.path, OPEN_FLAGS, 0o600)
        try:
            os.ftruncate(fd, need.size)
            if owner is not None:
                os.fchown(fd, *owner)
            os.utime(fd, (need.mtime, need.mtime))
        finally:
            os.close(fd)
        if need.missing:
            if relation_file(manifest_path) is None:
                raise IntegrityError(
                    f"{manifest_path}: no backup of the chain holds {len(need.missing)} of its "
                    "blocks; the chain is damaged"
                )
            warnings.append(f"{manifest_path}: {len(need.missing)} blocks held by no link, zeroed")
    return warnings


class BlockSink:
    """One member's bytes as blocks: those still needed written in place, the rest skipped.

    `numbers` maps the member's n-th block to its block number in the file (a member of
    changed blocks); None for a whole file, where the n-th block is block n.
    """

    def __init__(
        self,
        needs: Needs,
        manifest_path: str,
        numbers: Sequence[int] | None,
        algorithm: str | None,
    ) -> None:
        self.needs = needs
        self.manifest_path = manifest_path
        self.numbers = numbers
        self.checksum = new_checksum(algorithm) if algorithm else None
        self.size = needs.block_size
        self.carry = bytearray()
        self.index = 0
        self.length = 0
        self.fd: int | None = None

    def data(self, chunk: memoryview) -> None:
        if self.checksum is not None:
            self.checksum.update(chunk)
        self.length += len(chunk)
        view = chunk
        if self.carry:
            take = self.size - len(self.carry)
            self.carry += view[:take]
            view = view[take:]
            if len(self.carry) < self.size:
                return
            self._block(bytes(self.carry))
            self.carry = bytearray()
        while len(view) >= self.size:
            self._block(view[: self.size])
            view = view[self.size :]
        if len(view):
            self.carry += view

    def end(self) -> str | None:
        """Flush a last partial block; the member's checksum (None without an algorithm)."""
        if self.carry:
            self._block(bytes(self.carry))
            self.carry = bytearray()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        return self.checksum.hexdigest() if self.checksum is not None else None

    def _block(self, data: bytes | memoryview) -> None:
        number = self.numbers[self.index] if self.numbers is not None else self.index
        self.index += 1
        need = self.needs.take(self.manifest_path, number)
        if need is None:
            return
        if self.fd is None:
            os.makedirs(os.path.dirname(need.path), 0o700, exist_ok=True)
            try:
                self.fd = os.open(need.path, OPEN_FLAGS, 0o600)
            except OSError as exc:
                raise OperationFailed(f"cannot create {need.path}: {exc.strerror}") from None
        try:
            os.pwrite(self.fd, data, number * self.size)
        except OSError as exc:
            raise OperationFailed(f"cannot write {need.path}: {exc.strerror}") from None
