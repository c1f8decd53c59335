"""The chain restore: an incremental and every backup it builds on, restored in one pass.

Links are read newest first. The newest (the backup asked for) lays out the directory:
its directories and whole files go through the ordinary extractor, its changed blocks
into their files. Every file it restores but does not hold whole is a `Need`: the blocks
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
from collections.abc import Callable, Sequence
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
class Need:
    """A file the restored backup has but does not hold whole: the blocks still missing."""

    path: str  # where it is written
    size: int
    mtime: float
    missing: set[int]
    #: members writing into it now; it is settled when none is and no block is missing
    writers: int = 0
    #: sized, dated, owned and handed to the syncer (once its last block was written)
    settled: bool = False
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


_NOTHING = Need("", 0, 0.0, set())  # take()'s file when none of the blocks is wanted


@dataclass
class Needs:
    """Every file still short of blocks, shared by the handlers of every part.

    With `checksums`, each run written keeps its CRC32C, so that the restored directory's
    backup_manifest needs no read-back of the files assembled from several backups."""

    block_size: int
    checksums: bool = False
    files: dict[str, Need] = field(default_factory=dict)  # by manifest path
    written: dict[str, list[int]] = field(default_factory=dict)  # link -> [blocks, bytes]
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: called with each file as its last missing block is written (settle_need, then fsync);
    #: False when it cannot settle it yet
    on_complete: Callable[[Need], bool] | None = None

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
            needs.files[str(path)] = Need(target_path, int(size), float(mtime), set(range(count)))
        return needs

    def take(
        self, manifest_path: str, numbers: Sequence[int], joining: bool
    ) -> tuple[Need, list[tuple[int, int, int]]]:
        """The blocks of `numbers` still missing, now taken: the file and its runs as
        (position in `numbers`, first block, count), consecutive in both. `joining`: the
        caller has not written to the file yet (it counts as a writer once it takes one)."""
        with self.lock:
            need = self.files.get(manifest_path)
            if need is None or not need.missing or not numbers:
                return _NOTHING, []
            missing = need.missing
            if isinstance(numbers, range) and missing.issuperset(numbers):
                missing.difference_update(numbers)  # the common case: a whole stretch
                positions = None
            else:
                positions = [at for at, number in enumerate(numbers) if number in missing]
                if not positions:
                    return _NOTHING, []
                missing.difference_update(numbers[at] for at in positions)
            if joining:
                need.writers += 1
        if positions is None:
            return need, [(0, numbers[0], len(numbers))]
        runs: list[tuple[int, int, int]] = []
        for at in positions:
            if runs:
                start, block, count = runs[-1]
                if at == start + count and numbers[at] == block + count:
                    runs[-1] = (start, block, count + 1)
                    continue
            runs.append((at, numbers[at], 1))
        return need, runs

    def done_writing(self, need: Need) -> None:
        """A member's writes to `need` ended: settle the file now if nothing is missing."""
        with self.lock:
            need.writers -= 1
            if need.writers or need.missing or need.settled or self.on_complete is None:
                return
            need.settled = True
        if not self.on_complete(need):
            need.settled = False  # left to finish_needs (no other member writes it now)

    def wants(self, manifest_path: str) -> bool:
        with self.lock:
            need = self.files.get(manifest_path)
            return need is not None and bool(need.missing)

    def wrote(
        self, need: Need, link: str, first: int, count: int, data: bytes | memoryview
    ) -> None:
        """Count a run written from `link`; keep its checksum."""
        crc = 0
        if self.checksums:  # the C extension takes bytes only (a view is copied)
            crc = int(google_crc32c.value(data if type(data) is bytes else bytes(data)))
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


def settle_need(need: Need, owner: tuple[int, int] | None) -> None:
    """A needed file at its size, owned and dated (created if no link held a block)."""
    os.makedirs(os.path.dirname(need.path), 0o700, exist_ok=True)
    fd = os.open(need.path, OPEN_FLAGS, 0o600)
    try:
        os.ftruncate(fd, need.size)
        if owner is not None:
            os.fchown(fd, *owner)
        os.utime(fd, (need.mtime, need.mtime))
    finally:
        os.close(fd)


def finish_needs(needs: Needs, owner: tuple[int, int] | None) -> list[str]:
    """Every needed file not settled yet settled; the warnings of blocks no link held."""
    warnings = []
    for manifest_path, need in sorted(needs.files.items()):
        if need.settled:
            continue
        settle_need(need, owner)
        need.settled = True
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
    changed blocks); None for a whole file, where the n-th block is block n. The blocks of
    each chunk fed are taken in one step, and each run of consecutive needed blocks is
    written straight from the chunk with one pwrite (a block cut by a chunk's end alone).
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
        self.need: Need | None = None  # the file written to, once a block of it was taken

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
            self._blocks(memoryview(bytes(self.carry)), 1)
            self.carry = bytearray()
        count = len(view) // self.size
        if count:
            self._blocks(view[: count * self.size], count)
            view = view[count * self.size :]
        if len(view):
            self.carry += view

    def end(self) -> str | None:
        """Write a last partial block; settle the file if it is complete; the member's
        checksum (None without an algorithm)."""
        if self.carry:
            self._blocks(memoryview(bytes(self.carry)), 1)
            self.carry = bytearray()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.need is not None:
            self.needs.done_writing(self.need)
        return self.checksum.hexdigest() if self.checksum is not None else None

    def _blocks(self, view: memoryview, count: int) -> None:
        """`count` blocks of the member (the last one possibly short): write those needed."""
        first = self.index
        self.index += count
        numbers = (
            range(first, first + count)
            if self.numbers is None
            else self.numbers[first : first + count]
        )
        need, runs = self.needs.take(self.manifest_path, numbers, joining=self.need is None)
        if runs:
            self.need = need
        for at, block, blocks in runs:
            self._write(need, block, blocks, view[at * self.size : (at + blocks) * self.size])

    def _write(self, need: Need, first: int, count: int, data: memoryview) -> None:
        if self.fd is None:
            os.makedirs(os.path.dirname(need.path), 0o700, exist_ok=True)
            try:
                self.fd = os.open(need.path, OPEN_FLAGS, 0o600)
            except OSError as exc:
                raise OperationFailed(f"cannot create {need.path}: {exc.strerror}") from None
        view, offset = data, first * self.size
        try:
            while len(view):
                written = os.pwrite(self.fd, view, offset)
                view, offset = view[written:], offset + written
        except OSError as exc:
            raise OperationFailed(f"cannot write {need.path}: {exc.strerror}") from None
        self.needs.wrote(need, self.link, first, count, data)
