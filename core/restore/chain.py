"""The chain restore: an incremental and every backup it builds on, restored in one pass.

Which link writes each block is decided from the manifests before anything is read: the
newest link holding a block wins (as in pg_combinebackup), and a link holding a file whole
ends the search for older copies. So every link's parts are fetched at the same time and
each block is written once. The newest link (the backup asked for) lays out the directory:
its directories and whole files go through the ordinary extractor, its changed blocks into
their files. What no link holds stays zero, as pg_combinebackup leaves never-written space;
a non-relation file short of bytes fails before anything is written. Consecutive blocks are
written with one pwrite, and each run's CRC32C is kept, so that the restored directory's
backup_manifest is made without reading the files back (core.restore.crc_join).
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import google_crc32c

from core.backup.blocks import from_runs, relation_file
from core.catalog.backup_info import BackupInfo
from core.catalog.chains import FULL, chain_of, kind_of, link_sets
from core.catalog.manifest import FileRecord, PgvaultManifest, new_checksum
from core.catalog.reader import ArchiveSet, Catalog
from core.errors import IntegrityError, ObjectNotFound, OperationFailed, cannot_write
from core.restore.crc_join import Crc32cJoin
from core.restore.extract import NOT_RESTORED, Destination, clean_name

OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
MiB = 1024 * 1024


@dataclass(frozen=True)
class ChainLink:
    """One backup of a chain: what it records and its archive sets (by 'data' or OID)."""

    info: BackupInfo
    manifest: PgvaultManifest
    sets: tuple[ArchiveSet, ...]

    @cached_property
    def records(self) -> dict[str, FileRecord]:
        return {f.path: f for f in self.manifest.files}

    @cached_property
    def block_runs(self) -> dict[str, list[list[int]]]:
        """Files not stored whole: the runs of blocks stored ([] for an unchanged file)."""
        if kind_of(self.manifest) == FULL:
            return {}
        record = self.manifest.incremental or {}
        return {str(path): runs for path, _s, _m, runs in record.get("files", ())}

    @cached_property
    def block_maps(self) -> dict[str, list[int]]:
        """Files stored as blocks: the block numbers, in the order they are stored."""
        return {path: list(from_runs(runs)) for path, runs in self.block_runs.items() if runs}


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


WRITTEN = -1  # Need.changed's mark for a block already written


@dataclass
class Need:
    """A file the restored backup has but does not hold whole, and which link writes each block.

    Links are numbered newest first (0: the restored backup). `base` is the newest link that
    holds the file whole (its first `base_blocks` blocks); `changed` maps each block that a
    newer link stored as a changed block to the newest such link. Links older than `base`
    give nothing: as in pg_combinebackup, a whole copy ends the search for older ones. The
    memory is that of the changed blocks, not of the file's size.
    """

    path: str  # where it is written
    size: int
    mtime: float
    base: int | None
    base_blocks: int
    changed: dict[int, int]
    exceptions: list[int]  # changed blocks inside the base's stretch, ascending
    left: int  # blocks a link still has to write
    unheld: int  # blocks no link holds: left as zeros
    sources: frozenset[int]  # the links that write into it
    base_taken: int = 0  # the base's blocks below this are taken (a whole member streams in order)
    #: members writing into it now; it is settled when none is and no block is left
    writers: int = 0
    #: sized, dated, owned and handed to the syncer (once its last block was written)
    settled: bool = False
    #: each run written: (first block, blocks, bytes, CRC32C), when Needs keeps checksums
    pieces: list[tuple[int, int, int, int]] = field(default_factory=list)

    @classmethod
    def plan(
        cls,
        path: str,
        size: int,
        mtime: float,
        block_size: int,
        base: tuple[int, int] | None,
        changed: dict[int, int],
    ) -> Need:
        """`base`: (link, bytes of its whole copy); `changed`: block -> newest link storing it."""
        count = -(-size // block_size)
        base_blocks = min(count, -(-base[1] // block_size)) if base else 0
        changed = {block: link for block, link in changed.items() if block < count}
        exceptions = sorted(block for block in changed if block < base_blocks)
        left = base_blocks - len(exceptions) + len(changed)
        sources = set(changed.values())
        if base and base_blocks > len(exceptions):
            sources.add(base[0])
        return cls(
            path,
            size,
            mtime,
            base[0] if base else None,
            base_blocks,
            changed,
            exceptions,
            left,
            count - left,
            frozenset(sources),
        )

    def take(self, numbers: Sequence[int], link: int) -> list[tuple[int, int, int]]:
        """The blocks of `numbers` that `link` writes, marked taken: runs of (position in
        `numbers`, first block, count), consecutive in both."""
        if isinstance(numbers, range):
            return self._take_stretch(numbers.start, numbers.stop, link)
        runs: list[tuple[int, int, int]] = []
        changed = self.changed
        for at, number in enumerate(numbers):
            if changed.get(number) != link:
                continue
            changed[number] = WRITTEN
            if runs:
                start, block, count = runs[-1]
                if at == start + count and number == block + count:
                    runs[-1] = (start, block, count + 1)
                    continue
            runs.append((at, number, 1))
        return runs

    def _take_stretch(self, first: int, stop: int, link: int) -> list[tuple[int, int, int]]:
        """A whole copy's blocks first..stop: the base's, less the newer links' changed ones."""
        if link != self.base:
            return []
        start, end = max(first, self.base_taken), min(stop, self.base_blocks)
        if start >= end:
            return []
        self.base_taken = end
        runs = []
        at = start
        exceptions = self.exceptions
        for index in range(bisect_left(exceptions, start), bisect_left(exceptions, end)):
            block = exceptions[index]
            if block > at:
                runs.append((at - first, at, block - at))
            at = block + 1
        if at < end:
            runs.append((at - first, at, end - at))
        return runs

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


_NOTHING = Need.plan("", 0, 0.0, 1, None, {})  # take()'s file when none of the blocks is wanted


@dataclass
class Needs:
    """Every file still short of blocks, shared by the handlers of every part of every link.

    Which link writes each block is known from the manifests before anything is read, so
    the links' parts can be fetched at the same time. With `checksums`, each run written
    keeps its CRC32C, so that the restored directory's backup_manifest needs no read-back
    of the files assembled from several backups."""

    block_size: int
    checksums: bool = False
    files: dict[str, Need] = field(default_factory=dict)  # by manifest path
    written: dict[int, list[int]] = field(default_factory=dict)  # link -> [blocks, bytes]
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: called with each file as its last block is written (settle_need, then fsync);
    #: False when it cannot settle it yet
    on_complete: Callable[[Need], bool] | None = None

    @classmethod
    def of(
        cls,
        links: Sequence[ChainLink],
        where: dict[str, Destination],
        block_size: int,
        checksums: bool = False,
    ) -> Needs:
        """The files the newest link does not hold whole, each block given to its newest holder
        (IntegrityError for a file that is not relation data and that no link holds whole)."""
        needs = cls(block_size, checksums)
        record = links[0].manifest.incremental or {}
        wanted = {
            clean_name(str(path), "pgvault.json"): (int(size), float(mtime))
            for path, size, mtime, _runs in record.get("files", ())
            if "/" in path or path not in NOT_RESTORED
        }
        holders = {path: _holders(path, links) for path in wanted}
        for path, (size, mtime) in wanted.items():
            base, changed = holders[path]
            need = Need.plan(disk_path(path, where), size, mtime, block_size, base, changed)
            if need.unheld and relation_file(path) is None:
                raise IntegrityError(
                    f"{path}: no backup of the chain holds {need.unheld} of its blocks; "
                    "the chain is damaged"
                )
            needs.files[path] = need
        return needs

    def take(
        self, manifest_path: str, numbers: Sequence[int], link: int, joining: bool
    ) -> tuple[Need, list[tuple[int, int, int]]]:
        """The blocks of `numbers` that `link` writes, now taken: the file and its runs as
        (position in `numbers`, first block, count), consecutive in both. `joining`: the
        caller has not written to the file yet (it counts as a writer once it takes one)."""
        with self.lock:
            need = self.files.get(manifest_path)
            if need is None or not need.left or not numbers:
                return _NOTHING, []
            runs = need.take(numbers, link)
            if not runs:
                return _NOTHING, []
            need.left -= sum(count for _at, _block, count in runs)
            if joining:
                need.writers += 1
        return need, runs

    def done_writing(self, need: Need) -> None:
        """A member's writes to `need` ended: settle the file now if no block is left."""
        with self.lock:
            need.writers -= 1
            if need.writers or need.left or need.settled or self.on_complete is None:
                return
            need.settled = True
        if not self.on_complete(need):
            need.settled = False  # left to finish_needs (no other member writes it now)

    def wants(self, manifest_path: str, link: int) -> bool:
        with self.lock:
            need = self.files.get(manifest_path)
            return need is not None and bool(need.left) and link in need.sources

    def wrote(
        self, need: Need, link: int, first: int, count: int, data: bytes | memoryview
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


def _holders(
    path: str, links: Sequence[ChainLink]
) -> tuple[tuple[int, int] | None, dict[int, int]]:
    """The newest link holding `path` whole (link, bytes) and, from the links newer than
    it, each block stored as a changed block with its newest holder."""
    changed: dict[int, int] = {}
    for index, link in enumerate(links):
        maps = link.block_runs
        runs = maps.get(path)
        if runs is not None:
            for block in from_runs(runs):
                changed.setdefault(block, index)
            continue
        record = link.records.get(path)
        if record is None:
            break  # not in this backup: what older ones hold is of another file
        return (index, record.size), changed
    return None, changed


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
    """Every needed file not settled yet settled; the warnings of blocks no link held
    (IntegrityError for blocks a manifest promised and its archives did not hold)."""
    warnings = []
    for manifest_path, need in sorted(needs.files.items()):
        if need.left:
            raise IntegrityError(
                f"{manifest_path}: {need.left} of its blocks recorded in the chain's manifests "
                "were not in their archives; the chain is damaged"
            )
        if not need.settled:
            settle_need(need, owner)
            need.settled = True
        if need.unheld:
            warnings.append(f"{manifest_path}: {need.unheld} blocks held by no link, zeroed")
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
        link: int = 0,
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
        self.close()
        if self.need is not None:
            self.needs.done_writing(self.need)
        return self.checksum.hexdigest() if self.checksum is not None else None

    def close(self) -> None:
        """Close the file written to (at the member's end, or when the restore failed)."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def _blocks(self, view: memoryview, count: int) -> None:
        """`count` blocks of the member (the last one possibly short): write those needed."""
        first = self.index
        self.index += count
        numbers = (
            range(first, first + count)
            if self.numbers is None
            else self.numbers[first : first + count]
        )
        need, runs = self.needs.take(
            self.manifest_path, numbers, self.link, joining=self.need is None
        )
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
            raise cannot_write(need.path, exc) from None
        self.needs.wrote(need, self.link, first, count, data)
