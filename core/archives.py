"""Tar archive sets streamed to the object store: read, checksum, compress, upload, roll over.

A reader thread turns a walked tree into tar blocks, checksumming each file as it reads it
and applying PostgreSQL's rules for files that change during the copy (reference §6: the
scanned size is what is sent; a file that grew is cut there, one that shrank is padded with
zeros, one that vanished is skipped). The writer compresses the blocks (on several cores),
checksums the stored bytes and streams them to `data.tar`, `data_0001.tar`, ... through
ObjectStore.open_writer, which keeps at most -J parts in flight. Memory is bounded by the
blocks queued between the two and the parts in flight, whatever the database size.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.catalog.layout import ArchiveRef, ServerLayout
from core.catalog.manifest import ArchiveRecord, Checksum, FileRecord, new_checksum
from core.codecs import Codec, Compressor
from core.crypto import X25519Recipient
from core.encryption import EncryptingCompressor
from core.errors import OperationFailed
from core.postgres.pgdata import Entry, Tree
from core.progress import Reporter
from core.storage import ObjectStore, ObjectWriter, PutOptions, ResumedUpload, StoredChunk
from core.tarstream import Attributes, end_of_archive, header, padding

log = logging.getLogger("pgvault.archives")

MiB = 1024 * 1024
BLOCK_SIZE = 2 * MiB  # tar bytes per queued block (QUEUE_DEPTH + 2 of them in memory)
READ_SIZE = 1 * MiB  # one read() of a data file
SMALL = 64 * 1024  # pieces below this are gathered into one buffer
QUEUE_DEPTH = 2


@dataclass(slots=True)
class Member:
    """A file as it went into an archive; filled in by the reader and the writer."""

    manifest_path: str
    size: int
    mtime: float
    header_size: int
    checksum: str = ""
    archive: str = ""
    offset: int = 0

    def record(self) -> FileRecord:
        return FileRecord(
            path=self.manifest_path,
            size=self.size,
            mtime=self.mtime,
            checksum=self.checksum,
            archive=self.archive,
            offset=self.offset,
        )


class BlockChooser(Protocol):
    """Which blocks of each file an incremental backup stores (core.backup.increment)."""

    block_size: int

    def choose(self, manifest_path: str, fd: int, size: int) -> Sequence[int] | None:
        """None: store the whole file; else these block numbers (ascending), maybe none."""
        ...


@dataclass(frozen=True)
class PartUpload:
    """A part's upload as far as the store confirmed it, from its first chunk without gaps."""

    ref: ArchiveRef
    token: str  # names the upload for a later process
    chunks: tuple[tuple[StoredChunk, int], ...]  # each with the tar offset reached when it filled
    members: tuple[Member, ...]  # the part's files so far


class PartUploads(Protocol):
    """Where a backup records its parts' chunks, and finds an upload to continue."""

    def resumed(self, filename: str) -> ResumedUpload | None: ...

    def chunk_stored(self, upload: PartUpload) -> None: ...

    def reused(self, filename: str, stored_bytes: int) -> None: ...


class _DirStart:
    """Marks where a directory's header starts (it opens the first part if needed)."""


_DIR = _DirStart()


@dataclass(slots=True)
class _Block:
    """A run of the tar stream: bytes, and markers where a file's header starts."""

    items: list[bytes | Member | _DirStart] = field(default_factory=list)
    size: int = 0


class _Stopped(Exception):
    """The reader was told to stop: the file it was reading is left unfinished."""


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


class _TreeReader(threading.Thread):
    """Reads a tree's files into tar blocks on its own thread.

    Small pieces (headers, small files, padding) are gathered into one buffer; large reads
    travel as the bytes object os.read returned, so file data is copied once by the kernel
    and never again before compression.
    """

    def __init__(
        self,
        tree: Tree,
        algorithm: str,
        reporter: Reporter,
        checkpoint: Callable[[], None],
        chooser: BlockChooser | None = None,
    ) -> None:
        super().__init__(name="pgvault-reader", daemon=True)
        self.tree = tree
        self.chooser = chooser
        self.algorithm = algorithm
        self.reporter = reporter
        self.checkpoint = checkpoint
        self.blocks: queue.Queue[object] = queue.Queue(maxsize=QUEUE_DEPTH)
        self.stopping = threading.Event()
        self._block = _Block()
        self._small = bytearray()

    # ---- producer side -------------------------------------------------------------------

    def run(self) -> None:
        try:
            for entry in self.tree.entries:
                self.checkpoint()
                if self.stopping.is_set():
                    return
                if entry.is_dir:
                    self._mark(_DIR)
                    self._add(header(entry.path, 0, entry, is_dir=True))
                else:
                    self._file(entry)
            self._emit()
            self._put(_END)
        except _Stopped:
            return  # nobody reads the queue any more: the rest of the file is not read
        except BaseException as exc:  # handed to the writer, which re-raises it
            self._put(_Failure(exc))

    def _flush_small(self) -> None:
        if self._small:
            self._block.items.append(bytes(self._small))
            self._small.clear()

    def _mark(self, marker: Member | _DirStart) -> None:
        self._flush_small()
        self._block.items.append(marker)

    def _add(self, data: bytes) -> None:
        if len(data) < SMALL:
            self._small += data
        else:
            self._flush_small()
            self._block.items.append(data)
        self._block.size += len(data)
        if self._block.size >= BLOCK_SIZE:
            self._emit()

    def _emit(self) -> None:
        self._flush_small()
        if self._block.items:
            self._put(self._block)
            self._block = _Block()

    def _put(self, item: object) -> None:
        while not self.stopping.is_set():
            try:
                self.blocks.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _file(self, entry: Entry) -> None:
        source = self.tree.source(entry)
        try:
            fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self.tree.excluded["vanished"] += 1
            self.reporter.advance(0, files=1)
            return
        except OSError as exc:
            raise OperationFailed(f"cannot open {source}: {exc.strerror}") from None
        try:
            manifest_path = self.tree.manifest_prefix + entry.path
            chosen = self.chooser.choose(manifest_path, fd, entry.size) if self.chooser else None
            if chosen is None or self.chooser is None:
                self._whole(fd, source, entry, manifest_path)
            else:
                self._blocks(fd, source, entry, manifest_path, chosen, self.chooser.block_size)
        finally:
            os.close(fd)
        self.reporter.advance(0, files=1)

    def _whole(self, fd: int, source: str, entry: Entry, manifest_path: str) -> None:
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        raw = header(entry.path, entry.size, entry)
        member = Member(manifest_path, entry.size, entry.mtime, len(raw))
        self._mark(member)
        self._add(raw)
        member.checksum = self._copy(fd, source, entry.size)
        pad = padding(entry.size)
        if pad:
            self._add(pad)

    def _blocks(
        self,
        fd: int,
        source: str,
        entry: Entry,
        manifest_path: str,
        blocks: Sequence[int],
        block_size: int,
    ) -> None:
        """Only the chosen blocks, one after the other (the block map says which they are)."""
        if blocks:
            size = len(blocks) * block_size
            raw = header(entry.path, size, entry)
            member = Member(manifest_path, size, entry.mtime, len(raw))
            self._mark(member)
            self._add(raw)
            checksum: Checksum = new_checksum(self.algorithm)
            for number in blocks:
                if self.stopping.is_set():
                    raise _Stopped
                data = _pread_block(fd, source, number, block_size)
                checksum.update(data)
                self._add(data)
            member.checksum = checksum.hexdigest()
        # Progress counts the file as examined, whatever was stored of it.
        self.reporter.advance(entry.size)

    def _copy(self, fd: int, source: str, size: int) -> str:
        """Send exactly `size` bytes: cut a file that grew, zero-pad one that shrank."""
        checksum: Checksum = new_checksum(self.algorithm)
        left = size
        while left:
            if self.stopping.is_set():
                # A cancelled or failed backup: reading on to the end of a 1 GiB segment
                # only to drop it delayed the stop and counted bytes never sent.
                raise _Stopped
            try:
                data = os.read(fd, min(left, READ_SIZE))
            except InterruptedError:
                continue
            except OSError as exc:
                raise OperationFailed(f"cannot read {source}: {exc.strerror}") from None
            if not data:
                log.info("%s shrank during the backup: padding it with zeros", source)
                data = bytes(min(left, READ_SIZE))
            checksum.update(data)
            self._add(data)
            left -= len(data)
            self.reporter.advance(len(data))
        return checksum.hexdigest()

    # ---- consumer side -------------------------------------------------------------------

    def stop(self) -> None:
        self.stopping.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self.blocks.get_nowait()
        self.join(timeout=10)


@dataclass
class _Part:
    ref: ArchiveRef
    filename: str  # one string shared by every member the part holds
    writer: ObjectWriter
    compressor: Compressor | None
    checksum: Checksum
    tar_bytes: int = 0
    stored: int = 0
    files: int = 0
    first_member: int = 0  # index in the set's members of the part's first
    chunk_ends: list[int] = field(default_factory=list)  # tar offset as each chunk filled
    confirmed: dict[int, StoredChunk] = field(default_factory=dict)
    recorded: int = 0  # chunks confirmed from the first without a gap
    recorded_bytes: int = 0  # their size
    reported_bytes: int = 0  # their size when last handed to PartUploads


@dataclass(frozen=True)
class ArchiveSettings:
    """How every part of a backup's archive sets is written (the same for all of them)."""

    codec: Codec | None
    level: int | None
    threads: int
    max_size: int  # -S: a part rolls over before the next file once it stored this much
    chunk_size: int
    options: PutOptions
    algorithm: str  # of the per-file and per-part checksums
    recipient: X25519Recipient | None = None  # parts are sealed to it (age) after compression

    def compressor(self) -> Compressor | None:
        """A fresh stream transform for one part: compression, then encryption."""
        codec = self.codec.compressor(self.level, self.threads) if self.codec else None
        if self.recipient is None:
            return codec
        return EncryptingCompressor(codec, self.recipient)


@dataclass(frozen=True)
class ArchiveTarget:
    """Where a backup's parts go, and what watches and gates their upload."""

    store: ObjectStore
    layout: ServerLayout
    backup_id: str
    reporter: Reporter
    checkpoint: Callable[[], None]


class ArchiveSetWriter:
    """One archive set (PGDATA 'data' or a tablespace OID), split at max_size into parts."""

    def __init__(
        self,
        target: ArchiveTarget,
        name: str,
        settings: ArchiveSettings,
        *,
        first_part: int = 0,
        on_part: Callable[[ArchiveRecord, list[Member]], None] | None = None,
        uploads: PartUploads | None = None,
    ) -> None:
        """`first_part` numbers the first part (a resumed backup continues after the parts
        it kept); `on_part` gets each part once it is stored, with its members; `uploads`
        hears of every chunk stored and may give an upload to continue."""
        self.target = target
        self.name = name
        self.settings = settings
        self.reporter = target.reporter
        self.checkpoint = target.checkpoint
        self.members: list[Member] = []
        self.archives: list[ArchiveRecord] = []
        self._part: _Part | None = None
        self._next_part = first_part
        self._on_part = on_part
        self._uploads = uploads
        self._part_members = 0  # index in self.members of the current part's first member

    # ---- adding content --------------------------------------------------------------------

    def add_tree(self, tree: Tree, chooser: BlockChooser | None = None) -> None:
        """Stream every entry of a walked tree into the set (`chooser`: only some blocks)."""
        reader = _TreeReader(tree, self.settings.algorithm, self.reporter, self.checkpoint, chooser)
        reader.start()
        try:
            while (item := reader.blocks.get()) is not _END:
                if isinstance(item, _Failure):
                    raise item.exc
                if isinstance(item, _Block):
                    self._write_block(item)
        except BaseException:
            reader.stop()
            raise
        reader.join()

    def add_bytes(
        self, path: str, data: bytes, attributes: Attributes, *, rollover: bool = True
    ) -> None:
        """Add one in-memory file (pg_control, backup_label) at the end of the current part;
        its manifest path is its archive path (these files live at the top of PGDATA)."""
        self.checkpoint()
        raw = header(path, len(data), attributes)
        member = Member(path, len(data), attributes.mtime, len(raw))
        member.checksum = _digest(self.settings.algorithm, data)
        self._start_member(member, rollover)
        self._write(raw + data + padding(len(data)))
        self.reporter.advance(len(data), files=1)

    def close(self) -> list[ArchiveRecord]:
        """Finish the last part; returns every part of the set."""
        if self._part is None:
            self._open_part()
        self._finish_part()
        return self.archives

    def abort(self) -> None:
        """Abort the part being uploaded (no unfinished upload is left behind)."""
        part, self._part = self._part, None
        if part is not None:
            part.writer.abort()
            close = getattr(part.compressor, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()

    # ---- internals ---------------------------------------------------------------------------

    def _write_block(self, block: _Block) -> None:
        self.checkpoint()
        for item in block.items:
            if isinstance(item, Member):
                self._start_member(item)
            elif isinstance(item, _DirStart):
                if self._part is None:
                    self._open_part()
            else:
                self._write(item)

    def _start_member(self, member: Member, rollover: bool = True) -> None:
        """Roll over before a file once the part's stored size passed -S (barman's rule)."""
        if self._part is None:
            self._open_part()
        elif rollover and self._part.stored > self.settings.max_size:
            self._finish_part()
            self._open_part()
        part = self._current()
        member.archive = part.filename
        member.offset = part.tar_bytes + member.header_size
        part.files += 1
        self.members.append(member)

    def _open_part(self) -> _Part:
        settings, target = self.settings, self.target
        ref = ArchiveRef(self.name, self._next_part, settings.codec, settings.recipient is not None)
        self._next_part += 1
        key = target.layout.archive(target.backup_id, ref)
        resume = self._uploads.resumed(ref.filename()) if self._uploads else None
        writer = target.store.open_writer(key, settings.options, settings.chunk_size, resume)
        checksum = new_checksum(settings.algorithm)
        part = _Part(ref, ref.filename(), writer, settings.compressor(), checksum)
        part.first_member = self._part_members = len(self.members)
        if self._uploads is not None:
            writer.on_chunk = lambda chunk: self._chunk_stored(part, chunk)
        self._part = part
        return part

    def _chunk_stored(self, part: _Part, chunk: StoredChunk) -> None:
        """Record the chunks confirmed from the first on, for a resume by chunk."""
        part.confirmed[chunk.number] = chunk
        while part.recorded + 1 in part.confirmed:
            part.recorded += 1
            part.recorded_bytes += part.confirmed[part.recorded].size
        token = part.writer.token
        # The record grows with the part: rewriting it after every chunk would store
        # O(chunks^2) bytes. Every 1% of growth bounds that (about 400 records for 6,400
        # chunks) and what a kill loses to 1% of the part (plus the chunks in flight).
        if part.recorded_bytes <= part.reported_bytes * 1.01 or token is None:
            return
        if self._uploads is None:
            return
        part.reported_bytes = part.recorded_bytes
        chunks = tuple(
            (
                part.confirmed[n],
                part.chunk_ends[n - 1] if n <= len(part.chunk_ends) else part.tar_bytes,
            )
            for n in range(1, part.recorded + 1)
        )
        members = tuple(self.members[part.first_member :])
        self._uploads.chunk_stored(PartUpload(part.ref, token, chunks, members))

    def _current(self) -> _Part:
        """The part being written, opened if there is none."""
        return self._part if self._part is not None else self._open_part()

    def _write(self, data: bytes | memoryview) -> None:
        part = self._current()
        part.tar_bytes += len(data)
        out = part.compressor.compress(data) if part.compressor else data
        if out:
            self._store(part, out)

    def _store(self, part: _Part, data: bytes | memoryview) -> None:
        part.checksum.update(data)
        part.writer.write(data)
        part.stored += len(data)
        chunk = part.writer.chunk_size
        while part.stored >= (len(part.chunk_ends) + 1) * chunk:
            part.chunk_ends.append(part.tar_bytes)

    def _finish_part(self) -> None:
        part = self._current()
        tail = end_of_archive(part.tar_bytes)
        part.tar_bytes += len(tail)
        out = part.compressor.compress(tail) if part.compressor else tail
        if part.compressor:
            out += part.compressor.flush()
        if out:
            self._store(part, out)
        size = part.writer.close()
        self._part = None
        record = ArchiveRecord(
            filename=part.ref.filename(),
            name=self.name,
            part=part.ref.part,
            size=size,
            checksum=part.checksum.hexdigest(),
            tar_size=part.tar_bytes,
            files=part.files,
        )
        self.archives.append(record)
        log.info("stored %s (%d bytes)", part.ref.filename(), size)
        if part.writer.reused_bytes and self._uploads is not None:
            self._uploads.reused(record.filename, part.writer.reused_bytes)
        if self._on_part is not None:
            self._on_part(record, self.members[self._part_members :])


def _pread_block(fd: int, source: str, number: int, block_size: int) -> bytes:
    """One block; zeros past the end of a file that shrank (WAL replay rewrites it)."""
    try:
        data = os.pread(fd, block_size, number * block_size)
    except OSError as exc:
        raise OperationFailed(f"cannot read {source}: {exc.strerror}") from None
    return data + bytes(block_size - len(data))


def _digest(algorithm: str, data: bytes) -> str:
    checksum = new_checksum(algorithm)
    checksum.update(data)
    return checksum.hexdigest()
