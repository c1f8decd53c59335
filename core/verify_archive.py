"""Reading one stored archive of a backup for verify: its bytes, its tar stream, its files.

    read_archive(store, reporter, part, prefix, recorded) -> PartResult

The stored bytes are counted and checksummed against pgvault.json's archive record; they
are decompressed and parsed as a tar stream, each regular file's size and checksum compared
with its pgvault.json record. Problems are collected (a few per archive), never raised, so
that verify reports every damaged archive at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.catalog.layout import PGVAULT_MANIFEST
from core.catalog.manifest import ArchiveRecord, Checksum, FileRecord, new_checksum
from core.catalog.reader import StoredArchive
from core.codecs import Codec, Decompressor
from core.encryption import PushDecryptor, unlocked_keys
from core.errors import DecryptionFailed, ObjectNotFound, PgvaultError
from core.progress import Reporter
from core.restore.extract import NOT_RESTORED, clean_name
from core.restore.tarparse import FILE, TarError, TarMember, TarStream
from core.storage import ObjectStore

READ_SIZE = 4 * 1024 * 1024
MAX_PROBLEMS_PER_ARCHIVE = 5

Problem = Callable[[str], None]


@dataclass(frozen=True)
class Recorded:
    """What pgvault.json records of a backup (empty and None for one barman-cloud wrote)."""

    archives: dict[str, ArchiveRecord]
    files: dict[str, FileRecord] | None
    algorithm: str | None


@dataclass
class PartResult:
    checker: FileChecker | None  # None: the archive could not be read whole
    problems: list[str]
    size: int


class FileChecker:
    """Tar handler: each regular file's size and checksum against pgvault.json."""

    def __init__(
        self,
        label: str,
        archive: str,
        prefix: str,
        records: dict[str, FileRecord] | None,
        algorithm: str | None,
        problem: Callable[[str], None],
    ) -> None:
        self.label = label
        self.archive = archive
        self.prefix = prefix
        self.records = records
        self.algorithm = algorithm
        self.problem = problem
        self.seen: set[str] = set()
        self.files = 0
        self._path: str | None = None
        self._record: FileRecord | None = None
        self._checksum: Checksum | None = None
        self._size = 0

    def begin(self, member: TarMember) -> None:
        self._path = None
        if member.kind != FILE:
            return
        path = self.prefix + clean_name(member.name, self.label)
        self.files += 1
        if self.records is None:
            return
        record = self.records.get(path)
        if record is None:
            if not self.prefix and (path in NOT_RESTORED or path.startswith("pg_wal/")):
                return
            self.problem(f"{self.label}: holds {path}, which pgvault.json does not record")
            return
        if record.archive != self.archive:
            return  # a later copy in another part is the one restored (and checked there)
        self._path = path
        self._record = record
        self._checksum = new_checksum(self.algorithm) if self.algorithm else None
        self._size = 0

    def data(self, chunk: memoryview) -> None:
        if self._path is not None:
            self._size += len(chunk)
            if self._checksum is not None:
                self._checksum.update(bytes(chunk))

    def end(self) -> None:
        if self._path is None or self._record is None:
            return
        path, record = self._path, self._record
        self._path = None
        self.seen.add(path)
        digest = self._checksum.hexdigest() if self._checksum is not None else None
        if self._size != record.size:
            self.problem(
                f"{self.label}: {path} is {self._size} bytes, pgvault.json records {record.size}"
            )
        elif digest != record.checksum:
            self.problem(
                f"{self.label}: {path} has checksum {digest}, pgvault.json records "
                f"{record.checksum}"
            )


def read_archive(
    store: ObjectStore, reporter: Reporter, part: StoredArchive, prefix: str, recorded: Recorded
) -> PartResult:
    """Read one stored archive (on a worker thread): its checker when read whole."""
    label = part.key
    problems: list[str] = []

    def problem(text: str) -> None:
        if len(problems) < MAX_PROBLEMS_PER_ARCHIVE:
            problems.append(text)

    record = recorded.archives.get(part.filename)
    algorithm = recorded.algorithm
    checker = FileChecker(label, part.filename, prefix, recorded.files, algorithm, problem)
    checksum = new_checksum(algorithm) if algorithm and record is not None else None
    codec = part.ref.codec
    reading = _Reading(TarStream(checker), codec, codec.decompressor() if codec else None)
    if part.ref.encrypted:
        identities = unlocked_keys(store, part.key.split("/", 1)[0]).identities
        reading.decryptor = PushDecryptor(identities, label)
    try:
        size = _read_stored(store, reporter, part.key, checksum, reading)
    except ObjectNotFound:
        problem(f"{label}: listed, but gone when read")
        return PartResult(None, problems, reading.size)
    broken = reading.finish()
    if size != part.size:
        problem(f"{label}: {size} bytes read, {part.size} listed")
    if checksum is not None and record is not None:
        _compare_stored(label, size, checksum, record, problem)
    if broken is not None:
        problem(f"{label}: unreadable archive: {broken}")
        return PartResult(None, problems, size)
    return PartResult(checker, problems, size)


@dataclass
class _Reading:
    """One archive's tar stream as its stored bytes arrive; `broken` says why it is unreadable."""

    parser: TarStream
    codec: Codec | None
    decompressor: Decompressor | None
    size: int = 0
    broken: str | None = None
    decryptor: PushDecryptor | None = None  # an age-encrypted part: decrypted first

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.broken is None:  # read on to the end: the stored checksum says more
            plain = self._decrypt(chunk, last=False)
            if plain is not None:
                self.broken = _feed(self.parser, self.decompressor, plain)

    def _decrypt(self, chunk: bytes, last: bool) -> bytes | None:
        if self.decryptor is None:
            return chunk
        try:
            return self.decryptor.finish() if last else self.decryptor.feed(chunk)
        except DecryptionFailed as exc:
            self.broken = str(exc)
            return None

    def finish(self) -> str | None:
        if self.broken is None and self.decryptor is not None:
            plain = self._decrypt(b"", last=True)
            if plain is not None:
                self.broken = _feed(self.parser, self.decompressor, plain)
        if self.broken is None:
            if self.decompressor is not None and not self.decompressor.eof:
                self.broken = f"the {self.codec.name if self.codec else ''} stream is truncated"
            else:
                self.broken = _feed(self.parser, None, None)
        return self.broken


def _read_stored(
    store: ObjectStore, reporter: Reporter, key: str, checksum: Checksum | None, reading: _Reading
) -> int:
    """Every stored byte of the object, in order, into the checksum and the tar stream."""
    with store.open_reader(key) as reader:
        while True:
            reporter.checkpoint()
            chunk = reader.read(READ_SIZE)
            if not chunk:
                break
            reporter.advance(len(chunk))
            if checksum is not None:
                checksum.update(chunk)
            reading.feed(chunk)
    return reading.size


def _compare_stored(
    label: str, size: int, checksum: Checksum, record: ArchiveRecord, problem: Problem
) -> None:
    if size != record.size:
        problem(f"{label}: {size} bytes stored, {PGVAULT_MANIFEST} records {record.size}")
    elif checksum.hexdigest() != record.checksum:
        problem(
            f"{label}: checksum {checksum.hexdigest()} of the stored bytes does not match "
            f"the {record.checksum} recorded in {PGVAULT_MANIFEST}"
        )


def _feed(parser: TarStream, decompressor: Decompressor | None, chunk: bytes | None) -> str | None:
    """Feed the tar parser (None: finish it); why the stream is unreadable, or None."""
    try:
        if chunk is None:
            parser.finish()
        else:
            parser.feed(decompressor.decompress(chunk) if decompressor else chunk)
    except Exception as exc:  # each codec library raises its own error types
        plain = isinstance(exc, TarError | PgvaultError)
        return str(exc) if plain else f"{type(exc).__name__}: {exc}"
    return None


__all__ = [
    "MAX_PROBLEMS_PER_ARCHIVE",
    "FileChecker",
    "PartResult",
    "Recorded",
    "read_archive",
]
