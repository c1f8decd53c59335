"""The chain restore: an incremental and every backup it builds on, restored in one pass.

Links are read newest first. The newest (the backup asked for) lays out the directory:
its directories and whole files go through the ordinary extractor, its changed blocks
into their files. Every file it restores but does not hold whole is a `_Need`: the blocks
still missing, filled from older links as they stream by, each block written once (the
newest copy wins, as in pg_combinebackup). What no link holds stays zero, as
pg_combinebackup leaves never-written space; a non-relation file short of bytes fails.
Consecutive blocks are written with one pwrite, and each run's CRC32C is kept, so that the
restored directory's backup_manifest is made without reading the files back
(core.restore.crc_join).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import google_crc32c

from core.backup.blocks import from_runs, relation_file
from core.catalog.backup_info import BackupInfo
from core.catalog.chains import FULL, chain_of, kind_of, link_sets
from core.catalog.manifest import FileRecord, PgvaultManifest, new_checksum
from core.catalog.reader import ArchiveSet, Catalog
from core.errors import IntegrityError, ObjectNotFound, OperationFailed
from core.restore.crc_join import Crc32cJoin
from core.restore.extract import NOT_RESTORED, Destination

OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
MiB = 1024 * 1024
RUN_BYTES = MiB  # the most one pwrite of consecutive blocks writes


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
    #: each run written: (first block, blocks, bytes, CRC32C), when Needs keeps checksums
    pieces: list[tuple[int, int, int, int]] = field(default_factory=list)

    def checksum(self, join: Crc32cJoin) -> str | None:
        """The file's CRC32C as restored, from its pieces and its zeroed blocks; None when a
        piece is not the length its blocks have in the file (then it is read back)."""
        size, block = self.size, join.block_size
        crc, at = 0, 0  # at: the next block, crc: of the file up to it
        for first, count, length, piece_crc in sorted(self.pieces):
            if first < at:
                return None
            if first > at:  # blocks no link held: zeros
                gap = first * block - at * block
                crc = join.join(crc, join.zeros(gap), gap)
            if length != min(size, (first + count) * block) - first * block:
                return None
            crc = join.join(crc, piece_crc, length)
            at = first + count
        if at * block < size:
            rest = size - at * block
            crc = join.join(crc, join.zeros(rest), rest)
        return int(crc).to_bytes(4, "little").hex()


@dataclass
class Needs:
    """Every file still short of blocks, shared by the handlers of every part.

    With `checksums`, each run written keeps its CRC32C, so that the restored directory's
    backup_manifest needs no read-back of the files assembled from several backups."""

    block_size: int
    checksums: bool = False
    files: dict[str, _Need] = field(default_factory=dict)  # by manifest path
    written: dict[str, list[int]] = field(default_factory=dict)  # link -> [blocks, bytes]
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(
        cls,
        target: ChainLink,
        where: dict[str, Destination],
        block_size: int,
        checksums: bool = False,
    ) -> Needs:
        needs = cls(block_size, checksums)
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

    def wrote(self, need: _Need, link: str, first: int, count: int, data: bytes) -> None:
        """Count a run written from `link`; keep its checksum."""
        crc = int(google_crc32c.value(data)) if self.checksums else 0
        with self.lock:
            tally = self.written.setdefault(link, [0, 0])
            tally[0] += count
            tally[1] += len(data)
            if self.checksums:
                need.pieces.append((first, count, len(data), crc))


@dataclass(frozen=True)
class LinkWritten:
    """What one backup of the chain gave the restored directory."""

    backup_id: str
    kind: str
    whole: tuple[int, int]  # files restored whole by the extractor, bytes (the newest link)
    blocks: tuple[int, int]  # blocks written into assembled files, bytes


@dataclass(frozen=True)
class ChainWritten:
    """What a chain restore wrote, link by link, and the assembled files' CRC32Cs."""

    links: tuple[LinkWritten, ...]  # newest first
    assembled: int  # files the newest link does not hold whole, built from blocks
    checksums: dict[str, str]  # manifest path -> CRC32C of the runs written (no read-back)

    def describe(self) -> str:
        parts = []
        for link in self.links:
            whole = f"{link.whole[0]} files whole and " if link.whole[0] else ""
            mib = (link.whole[1] + link.blocks[1]) / MiB
            parts.append(
                f"{link.backup_id} ({link.kind}) {whole}{link.blocks[0]} blocks, {mib:.1f} MiB"
            )
        return (
            f"{len(self.links)} backups of the chain restored in one pass, newest first: "
            + "; ".join(parts)
            + f"; {self.assembled} files assembled from their blocks"
        )


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
    changed blocks); None for a whole file, where the n-th block is block n. Consecutive
    needed blocks are written with one pwrite, up to RUN_BYTES (never across a chunk fed).
    """

    def __init__(
        self,
        needs: Needs,
        manifest_path: str,
        numbers: Sequence[int] | None,
        algorithm: str | None,
        link: str = "",
    ) -> None:
        self.needs = needs
        self.manifest_path = manifest_path
        self.numbers = numbers
        self.checksum = new_checksum(algorithm) if algorithm else None
        self.link = link
        self.size = needs.block_size
        self.carry = bytearray()
        self.index = 0
        self.length = 0
        self.fd: int | None = None
        self.run: list[bytes | memoryview] = []  # blocks of the run not yet written
        self.run_first = 0
        self.run_need: _Need | None = None

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
        self._flush()  # the run holds views of `chunk`, valid during this call only
        if len(view):
            self.carry += view

    def end(self) -> str | None:
        """Flush a last partial block; the member's checksum (None without an algorithm)."""
        if self.carry:
            self._block(bytes(self.carry))
            self.carry = bytearray()
        self._flush()
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
        if self.run and (
            number != self.run_first + len(self.run) or len(self.run) * self.size >= RUN_BYTES
        ):
            self._flush()
        if not self.run:
            self.run_first, self.run_need = number, need
        self.run.append(data)

    def _flush(self) -> None:
        need = self.run_need
        if not self.run or need is None:
            return
        data = b"".join(self.run)
        count, first = len(self.run), self.run_first
        self.run = []
        if self.fd is None:
            os.makedirs(os.path.dirname(need.path), 0o700, exist_ok=True)
            try:
                self.fd = os.open(need.path, OPEN_FLAGS, 0o600)
            except OSError as exc:
                raise OperationFailed(f"cannot create {need.path}: {exc.strerror}") from None
        view, offset = memoryview(data), first * self.size
        try:
            while len(view):
                written = os.pwrite(self.fd, view, offset)
                view, offset = view[written:], offset + written
        except OSError as exc:
            raise OperationFailed(f"cannot write {need.path}: {exc.strerror}") from None
        self.needs.wrote(need, self.link, first, count, data)
