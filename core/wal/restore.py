"""Fetch one WAL file for restore_command, verified before PostgreSQL sees it.

A file reaches WAL_DEST only after it decompressed completely, matched the SHA-256 and
size pgvault recorded when archiving (objects barman-cloud wrote have none), and passed
the header checks: right segment size, right page address, and, when WAL_DEST is inside
a data directory, the system identifier of that cluster. It is written under a temporary
name and renamed, so PostgreSQL never sees a partial file. With `parallel` > 1 the next
segments are downloaded at the same time into a spool (also verified, also renamed into
place), and later calls take them from there, as barman-cloud-wal-restore -p does.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from core.catalog.layout import ServerLayout
from core.codecs import Codec
from core.encryption import open_object
from core.errors import ContainerNotFound, InputError, ObjectNotFound, PgvaultError
from core.postgres.control import peek_control, peek_system_identifier
from core.postgres.walnames import (
    DEFAULT_SEGMENT_SIZE,
    Segment,
    is_segment,
    is_wal_name,
    segment_name,
    segments_per_id,
)
from core.storage import ObjectInfo, ObjectStore, StoreConfig, open_store
from core.urls import Location, Provider
from core.wal.archive import META_SHA256, META_SIZE, decompress_object
from core.wal.errors import ArchiveMissing, LocalIOError, WalCorrupt, WalNotFound
from core.wal.files import private_dir
from core.wal.header import BadWalFile, check_wal_file

log = logging.getLogger("pgvault.wal")

DEFAULT_SPOOL = "/var/tmp/walrestore"  # noqa: S108 - private_dir refuses a shared one
#: pg_control starts with the system identifier (uint64)


@dataclass(frozen=True)
class FetchOptions:
    no_partial: bool = False
    parallel: int = 0
    spool_dir: str = DEFAULT_SPOOL


@dataclass(frozen=True)
class FetchResult:
    name: str
    source: str
    prefetched: list[str] = field(default_factory=list)


def restore_wal(
    location: Location,
    config: StoreConfig,
    server: str,
    options: FetchOptions,
    name: str,
    dest: str,
) -> FetchResult:
    """restore_command's request: `name` at `dest`, or WalNotFound (the end of the archive).

    A missing archive (bucket, container, directory) is ArchiveMissing, never WalNotFound:
    PostgreSQL would take that for the end of the archive.
    """
    if location.provider is Provider.FILE and not os.path.isdir(location.bucket):
        # A local store creates its directory on first use; a restore must not.
        raise ArchiveMissing(f"the archive directory {location.bucket} does not exist")
    try:
        with open_store(location, config) as store:
            return WalFetcher(store, server, options, location.display()).fetch(name, dest)
    except ContainerNotFound as exc:
        raise ArchiveMissing(str(exc)) from None


def cluster_system_identifier(dest: str) -> int | None:
    """The system identifier of the cluster whose pg_wal holds `dest`, when there is one.

    restore_command runs in the data directory with %p = pg_wal/RECOVERYXLOG.
    """
    return peek_system_identifier(os.path.dirname(os.path.dirname(os.path.abspath(dest))))


def cluster_segment_size(dest: str) -> int | None:
    """The WAL segment size of the cluster whose pg_wal holds `dest`, when there is one."""
    control = peek_control(os.path.dirname(os.path.dirname(os.path.abspath(dest))))
    return control.wal_segment_size if control else None


def _names_a_segment(name: str, segment_size: int) -> bool:
    """Whether `name` is a segment name possible with that segment size."""
    return is_segment(name) and int(name[16:24], 16) < segments_per_id(segment_size)


def verify_wal(
    name: str, key: str, codec: Codec | None, raw: bytes, meta: dict[str, str], sysid: int | None
) -> bytes:
    """The uncompressed bytes of `key` when they are a sound copy of WAL file `name`."""
    data = decompress_object(key, codec, raw)
    if META_SHA256 in meta:
        if meta.get(META_SIZE) not in (None, str(len(data))):
            raise WalCorrupt(f"{key} holds {len(data)} bytes, {meta[META_SIZE]} were archived")
        if hashlib.sha256(data).hexdigest() != meta[META_SHA256]:
            raise WalCorrupt(f"{key} does not match the SHA-256 recorded when it was archived")
    try:
        check_wal_file(name, data, sysid)
    except BadWalFile as exc:
        raise WalCorrupt(f"{key} is not a sound copy of {name}: {exc}") from None
    return data


def _write_atomically(data: bytes, dest: str) -> None:
    directory = os.path.dirname(os.path.abspath(dest))
    temp = os.path.join(directory, f".{os.path.basename(dest)}.pgvault-{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as fh:
            fh.write(data)
        os.replace(temp, dest)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise LocalIOError(f"cannot write {dest}: {exc.strerror}") from None


class WalFetcher:
    """restore_command's engine for one server of one destination."""

    def __init__(
        self, store: ObjectStore, server: str, options: FetchOptions, spool_identity: str
    ) -> None:
        self.store = store
        self.layout = ServerLayout(server)
        self.options = options
        digest = hashlib.sha1(
            f"{spool_identity}\0{server}".encode(), usedforsecurity=False
        ).hexdigest()[:12]
        self.spool = os.path.join(options.spool_dir, f"{server}.{digest}")

    # ---- the request ------------------------------------------------------------------------

    def fetch(self, name: str, dest: str) -> FetchResult:
        """Deliver `name` to `dest`; WalNotFound when the archive does not have it."""
        if not is_wal_name(name):
            raise InputError(f"{name} is an invalid name for a WAL file")
        sysid = cluster_system_identifier(dest)
        if self._from_spool(name, dest, sysid):
            return FetchResult(name, "spool")
        # Which names follow depends on the segment size (16 MiB unless the cluster says).
        size = cluster_segment_size(dest) or DEFAULT_SEGMENT_SIZE
        prefetch = self.options.parallel > 1 and _names_a_segment(name, size)
        listing = self._listing(name, prefetch, size)
        candidates = self._candidates(name, listing)
        if not candidates:
            raise WalNotFound(f"{name} is not in the archive")
        targets = self._prefetch_targets(name, listing, size) if prefetch else []
        workers = max(1, min(self.options.parallel, len(targets) + 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pgvault-fetch") as pool:
            fetched: dict[str, Future[bool]] = {
                target: pool.submit(self._prefetch, target, info, sysid) for target, info in targets
            }
            source = self._deliver(name, candidates, dest, sysid)
            done = [target for target, future in fetched.items() if future.result()]
        return FetchResult(name, source, done)

    def _deliver(
        self,
        name: str,
        candidates: list[tuple[ObjectInfo, Codec | None]],
        dest: str,
        sysid: int | None,
    ) -> str:
        errors: list[WalCorrupt] = []
        for position, (info, codec) in enumerate(candidates, 1):
            try:
                data = self._download(name, info, codec, sysid)
            except WalCorrupt as exc:
                if position < len(candidates):
                    log.warning("%s; trying another copy", exc)
                errors.append(exc)
                continue
            except ObjectNotFound:
                continue  # removed since the listing (retention): try the next copy
            _write_atomically(data, dest)
            log.info("restored %s from %s", name, info.key)
            return info.key
        if errors:
            raise WalCorrupt(f"{errors[0]}; {name} was not written to {dest}")
        raise WalNotFound(f"{name} is not in the archive")

    def _download(
        self, name: str, info: ObjectInfo, codec: Codec | None, sysid: int | None
    ) -> bytes:
        meta = self.store.head(info.key).metadata_dict()
        raw = open_object(self.store, self.layout.server, self.store.get_bytes(info.key), info.key)
        return verify_wal(name, info.key, codec, raw, meta, sysid)

    # ---- what the archive holds -------------------------------------------------------------

    def _listing(self, name: str, whole_directory: bool, size: int) -> list[ObjectInfo]:
        directory = self.layout.wal_dir(name)
        if not whole_directory:
            return list(self.store.list_objects(directory + name))
        listing = list(self.store.list_objects(directory))
        segment = Segment.parse(name, size)
        following = segment_name(segment.timeline, segment.segno + self.options.parallel - 1, size)
        if following[:16] != name[:16]:
            listing += list(self.store.list_objects(self.layout.wal_dir(following)))
        return listing

    def _copies(
        self, listing: list[ObjectInfo]
    ) -> dict[str, list[tuple[ObjectInfo, Codec | None]]]:
        copies: dict[str, list[tuple[ObjectInfo, Codec | None]]] = {}
        for info in listing:
            parsed = self.layout.parse_wal(info.key)
            if parsed is not None:
                copies.setdefault(parsed[0], []).append((info, parsed[1]))
        return copies

    def _candidates(
        self, name: str, listing: list[ObjectInfo]
    ) -> list[tuple[ObjectInfo, Codec | None]]:
        """The objects that can serve `name`: its own copies, else its .partial (barman's
        rule, unless --no-partial)."""
        copies = self._copies(listing)
        if copies.get(name):
            return copies[name]
        if is_segment(name) and not self.options.no_partial:
            return copies.get(f"{name}.partial", [])
        return []

    def _prefetch_targets(
        self, name: str, listing: list[ObjectInfo], size: int
    ) -> list[tuple[str, tuple[ObjectInfo, Codec | None]]]:
        """The next parallel-1 segments, consecutive, that the archive holds in full."""
        copies = self._copies(listing)
        segment = Segment.parse(name, size)
        targets = []
        for _ in range(self.options.parallel - 1):
            segment = segment.next()
            following = segment.name(size)
            if not copies.get(following):
                break
            if not os.path.exists(os.path.join(self.spool, following)):
                targets.append((following, copies[following][0]))
        return targets

    # ---- the spool --------------------------------------------------------------------------

    def _spool_ready(self) -> bool:
        try:
            private_dir(self.spool)
        except LocalIOError as exc:
            log.warning("not prefetching: %s", exc)
            return False
        return True

    def _prefetch(
        self, name: str, copy: tuple[ObjectInfo, Codec | None], sysid: int | None
    ) -> bool:
        info, codec = copy
        try:
            if not self._spool_ready():
                return False
            data = self._download(name, info, codec, sysid)
            _write_atomically(data, os.path.join(self.spool, name))
        except PgvaultError as exc:
            log.info("prefetch of %s failed (it will be fetched when asked for): %s", name, exc)
            return False
        return True

    def _from_spool(self, name: str, dest: str, sysid: int | None) -> bool:
        path = os.path.join(self.spool, name)
        if not os.path.isfile(path):
            return False
        try:
            private_dir(self.spool, create=False)
            with open(path, "rb") as fh:
                data = fh.read()
            check_wal_file(name, data, sysid)
        except (LocalIOError, OSError, BadWalFile) as exc:
            log.warning("ignoring %s in the spool: %s", path, exc)
            with contextlib.suppress(OSError):
                os.unlink(path)
            return False
        try:
            os.replace(path, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise LocalIOError(f"cannot move {path} to {dest}: {exc.strerror}") from None
            _write_atomically(data, dest)
            os.unlink(path)
        log.info("restored %s from the spool", name)
        return True
