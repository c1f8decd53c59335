"""Archive one WAL file in barman-cloud's layout, durably and without ever overwriting.

The object is `<server>/wals/<timeline+log>/<name>[.gz|.bz2|.xz|.snappy|.zst|.lz4]`
(history files directly under `wals/`). Success means the store confirmed the object.
Archiving a name that is already archived, under any compression suffix, succeeds when the
stored content equals the file and fails with WalConflict otherwise, leaving the stored
object untouched. The comparison uses the SHA-256 of the uncompressed bytes that pgvault
records in the object's metadata; objects without it (written by barman-cloud) are
downloaded, decompressed and compared byte for byte. A server with a key file
(core.encryption) has every object age-encrypted after compression, under the same key.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.catalog.layout import ServerLayout
from core.codecs import Codec, get_codec, parse_level
from core.encryption import SealBuffers, keyfile_key, seal, write_recipient
from core.errors import InputError, ObjectExists, ObjectNotFound, OperationFailed
from core.postgres.walnames import is_history
from core.progress import NullReporter, Reporter
from core.storage import ObjectInfo, ObjectStore, PutOptions
from core.urls import Provider
from core.wal.errors import LocalIOError, WalConflict, WalCorrupt, WalRejected
from core.wal.files import FileIdentity, wal_name_of
from core.wal.header import BadWalFile, check_wal_file

log = logging.getLogger("pgvault.wal")

META_SHA256 = "pgvault_sha256"
META_SIZE = "pgvault_size"
META_SYSID = "pgvault_sysid"


def resolve_level(codec: Codec | None, text: str | None) -> int | None:
    """barman-cloud's --compression-level: low/medium/high or a clamped integer; medium
    when absent."""
    if codec is None:
        if text is not None:
            raise InputError("--compression-level needs a compression option (-z, --zstd, ...)")
        return None
    if text is None:
        return codec.levels[1]
    return parse_level(codec, text.strip().lower())


@dataclass(frozen=True)
class ArchiveSettings:
    """How WAL objects are written: compression, tags, and Azure's single-put limit."""

    compression: str | None = None
    level: int | None = None
    tags: tuple[tuple[str, str], ...] = ()
    #: used instead of `tags` for .history files when given (barman's --history-tags)
    history_tags: tuple[tuple[str, str], ...] | None = None
    #: Azure: objects larger than this go up as blocks of `block_size` (--max-single-put-size)
    single_put_limit: int | None = None
    block_size: int | None = None

    @property
    def codec(self) -> Codec | None:
        return get_codec(self.compression)

    def tags_for(self, name: str) -> tuple[tuple[str, str], ...]:
        if is_history(name) and self.history_tags:
            return self.history_tags
        return self.tags


@dataclass(frozen=True)
class WalFile:
    """A WAL file read from disk and checked: its bytes, digest and identity."""

    name: str
    path: str
    data: bytes
    sha256: str
    identity: FileIdentity
    system_identifier: int | None


@dataclass(frozen=True)
class ArchiveResult:
    """The outcome of archiving one file: stored now, or found already archived."""

    name: str
    key: str
    stored: bool
    size: int
    stored_size: int
    system_identifier: int | None


def read_wal_file(path: str) -> WalFile:
    """Read and check a WAL file: a bad name is exit 3, bad content exit 1 (WalRejected)."""
    name = wal_name_of(path)
    try:
        with open(path, "rb") as fh:
            before = FileIdentity.of(os.fstat(fh.fileno()))
            data = fh.read()
            after = FileIdentity.of(os.fstat(fh.fileno()))
    except FileNotFoundError:
        raise InputError(f"WAL file {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a WAL file") from None
    except OSError as exc:
        raise LocalIOError(f"cannot read WAL file {path}: {exc.strerror}") from None
    if before != after or len(data) != before.size:
        raise WalRejected(f"{path} changed while it was read; not archived")
    try:
        header = check_wal_file(name, data)
    except BadWalFile as exc:
        raise WalRejected(f"refusing to archive {path}: {exc}") from None
    return WalFile(
        name=name,
        path=path,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        identity=before,
        system_identifier=header.system_identifier if header else None,
    )


def wal_metadata(wal: WalFile) -> tuple[tuple[str, str], ...]:
    meta = [(META_SHA256, wal.sha256), (META_SIZE, str(len(wal.data)))]
    if wal.system_identifier is not None:
        meta.append((META_SYSID, str(wal.system_identifier)))
    return tuple(meta)


def decompress_object(key: str, codec: Codec | None, data: bytes) -> bytes:
    """The uncompressed bytes of an archived object; WalCorrupt when they cannot be had."""
    if codec is None:
        return data
    try:
        return codec.decompress(data)
    except Exception as exc:  # each codec library raises its own error types
        raise WalCorrupt(f"{key} does not decompress as {codec.name}: {exc}") from None


class WalArchiver:
    """Archives WAL files of one server into one store; safe to share between threads."""

    def __init__(self, store: ObjectStore, server: str, settings: ArchiveSettings) -> None:
        self.store = store
        self.layout = ServerLayout(server)
        self.settings = settings
        self.codec = settings.codec
        # A server with a key file: every object sealed to its data recipient (read once).
        self.recipient = write_recipient(store, server)
        # A fresh 16 MiB buffer per sealed segment cost as much as the cipher (issue 16).
        self._seal_buffers = SealBuffers()

    def refresh_key(self) -> None:
        """Read the key file again, for a writer that outlives one file (the pusher): a
        `keys init` or `keys rotate` since the last read reaches its next file. A key file
        gone from a server that had one stops it rather than write the WAL in plaintext."""
        recipient = write_recipient(self.store, self.layout.server)
        if recipient is None and self.recipient is not None:
            raise OperationFailed(
                f"the key file of server {self.layout.server} ({keyfile_key(self.layout.server)}"
                f" in {self.store.describe()}) is gone: WAL of an encrypted server is not "
                "written in plaintext; put the key file back (from a copy of the destination)"
            )
        self.recipient = recipient

    # ---- lookups ----------------------------------------------------------------------------

    def archived_copies(
        self, name: str, listing: Iterable[ObjectInfo] | None = None
    ) -> list[ObjectInfo]:
        """Every object holding WAL `name`, whatever its compression suffix."""
        if listing is None:
            listing = self.store.list_objects(self.layout.wal_dir(name) + name)
        found = []
        for info in listing:
            parsed = self.layout.parse_wal(info.key)
            if parsed is not None and parsed[0] == name:
                found.append(info)
        return found

    def list_wal_dir(self, name: str) -> list[ObjectInfo]:
        """One listing of the directory that holds `name` (shared by a batch)."""
        return list(self.store.list_objects(self.layout.wal_dir(name)))

    def same_content(self, info: ObjectInfo, wal: WalFile) -> bool:
        """Does the stored object hold exactly the bytes of `wal`?"""
        head = self.store.head(info.key)
        meta = head.metadata_dict()
        if META_SHA256 in meta:
            return meta[META_SHA256] == wal.sha256 and meta.get(META_SIZE) == str(len(wal.data))
        parsed = self.layout.parse_wal(info.key)
        codec = parsed[1] if parsed else None
        try:
            stored = decompress_object(info.key, codec, self.store.get_bytes(info.key))
        except WalCorrupt as exc:
            log.warning("%s", exc)
            return False
        return stored == wal.data

    # ---- archiving --------------------------------------------------------------------------

    def archive(self, path: str, reporter: Reporter | None = None) -> ArchiveResult:
        return self.archive_file(read_wal_file(path), reporter=reporter)

    def archive_file(
        self,
        wal: WalFile,
        listing: Sequence[ObjectInfo] | None = None,
        reporter: Reporter | None = None,
    ) -> ArchiveResult:
        """Store `wal` unless an equal copy is archived; WalConflict for a different one."""
        reporter = reporter or NullReporter()
        copies = self.archived_copies(wal.name, listing)
        if copies:
            return self._resolve(wal, copies, reporter)
        key = self.layout.wal(wal.name, self.codec)
        body = self._compress(wal)
        options = PutOptions(
            tags=self.settings.tags_for(wal.name), if_absent=True, metadata=wal_metadata(wal)
        )
        # Stored as read (no codec, no key): the store signs and checks it with wal.sha256.
        digest = wal.sha256 if body is wal.data else None
        try:
            self._put(key, body, options, digest)
        except ObjectExists:
            # Someone stored it between the listing and the write, or an earlier attempt of
            # this write did and its answer was lost: compare with the stored copy.
            copies = self.archived_copies(wal.name) or [self.store.head(key)]
            return self._resolve(wal, copies, reporter)
        reporter.advance(len(wal.data), files=1)
        log.info("archived %s as %s (%d bytes stored)", wal.name, key, len(body))
        return ArchiveResult(wal.name, key, True, len(wal.data), len(body), wal.system_identifier)

    def _resolve(self, wal: WalFile, copies: list[ObjectInfo], reporter: Reporter) -> ArchiveResult:
        for info in copies:
            try:
                same = self.same_content(info, wal)
            except ObjectNotFound:
                same = False
            if not same:
                raise WalConflict(
                    f"{wal.name} is already archived as {info.key} with different content; "
                    "the archived copy is kept and nothing was written (check that no other "
                    "server archives into this server name)"
                )
        reporter.advance(len(wal.data), files=1)
        log.info("%s is already archived with identical content", wal.name)
        first = copies[0]
        return ArchiveResult(
            wal.name, first.key, False, len(wal.data), first.size, wal.system_identifier
        )

    def _compress(self, wal: WalFile) -> bytes | bytearray | memoryview:
        """The stored body: compressed, then encrypted when the server has a key file (then
        valid until this thread's next call)."""
        plain = (
            wal.data if self.codec is None else self.codec.compress(wal.data, self.settings.level)
        )
        return seal(plain, self.recipient, self._seal_buffers)

    def _put(
        self,
        key: str,
        body: bytes | bytearray | memoryview,
        options: PutOptions,
        sha256: str | None,
    ) -> None:
        limit = self.settings.single_put_limit
        if (
            self.store.provider is Provider.AZURE
            and limit is not None
            and len(body) > limit
            and self.settings.block_size
        ):
            # barman-cloud's concurrent chunk method: blocks of --max-block-size,
            # --max-concurrency of them in flight (the store's jobs), one commit.
            with self.store.open_writer(key, options, chunk_size=self.settings.block_size) as w:
                w.write(body)
            return
        self.store.put_bytes(key, body, options, sha256)


def same_encryption(primary: WalArchiver, secondary: WalArchiver) -> None:
    """An encrypted server's WAL never reaches a secondary destination in plaintext."""
    if primary.recipient is not None and secondary.recipient is None:
        raise OperationFailed(
            f"server {primary.layout.server} is encrypted but the secondary destination "
            f"{secondary.store.describe()} has no key file for it: copy a backup there first "
            "(`pgvault copy` copies pgvault.keys) so the WAL is sealed there too"
        )
