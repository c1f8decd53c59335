"""The object-store interface every backend implements, and the machinery they share.

Backends implement small raw primitives (one request each, errors translated to
core.errors); ObjectStore wraps them with retries, streaming multipart writes with a bounded
number of parts in flight, resumable ranged reads, and the shared bandwidth limiter.
Keys are relative to the location's prefix.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from core.errors import InputError, ObjectNotFound, PgvaultError, StorageError, TransientError
from core.storage.bandwidth import BandwidthLimiter, Payload
from core.storage.retry import NO_RETRY, RetryPolicy
from core.urls import Location, Provider

log = logging.getLogger("pgvault.storage")
T = TypeVar("T")

MiB = 1024 * 1024
MAX_TAGS = 10
_METADATA_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
READ_BLOCK = 1 * MiB


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object as a listing or head reports it."""

    key: str
    size: int
    modified: datetime | None = None
    etag: str | None = None
    storage_class: str | None = None
    #: user metadata written with PutOptions.metadata (filled by head(), not by listings)
    metadata: tuple[tuple[str, str], ...] = ()

    def metadata_dict(self) -> dict[str, str]:
        return dict(self.metadata)


@dataclass(frozen=True)
class CommonPrefix:
    """A 'directory' in a delimited listing; prefix ends with the delimiter."""

    prefix: str


@dataclass(frozen=True)
class PendingUpload:
    """An upload that was started and neither completed nor aborted."""

    key: str
    upload_id: str
    started: datetime | None = None


@dataclass(frozen=True)
class PutOptions:
    """Per-object write options: tags, storage class or tier, no-overwrite, and metadata.

    Metadata keys are lowercase letters, digits and underscores (valid on every provider:
    S3 lowercases them, Azure wants identifiers); values are ASCII. Unlike tags they are
    returned by head() and do not count towards the ten-tag limit.
    """

    tags: tuple[tuple[str, str], ...] = ()
    storage_class: str | None = None
    if_absent: bool = False
    metadata: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for key, value in self.metadata:
            if not _METADATA_KEY.match(key) or not value.isascii():
                raise InputError(f"invalid object metadata {key!r}={value!r}")

    def tag_dict(self) -> dict[str, str]:
        return dict(self.tags)

    def metadata_dict(self) -> dict[str, str]:
        return dict(self.metadata)


@dataclass(frozen=True)
class StoreConfig:
    """Connection-level settings from the command line (barman-cloud's flags)."""

    endpoint_url: str | None = None
    aws_profile: str | None = None
    read_timeout: int | None = None
    addressing_style: str | None = None
    azure_credential: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = field(default=None, repr=False)
    encryption_scope: str | None = None
    kms_key_name: str | None = None
    min_chunk_size: int | None = None
    jobs: int = 2
    max_bandwidth: int | None = None
    azure_max_block_size: int | None = None
    azure_max_single_put_size: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def validate_tags(tags: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """barman-cloud's rule: at most ten tags with unique, non-empty keys."""
    result = tuple(tags)
    keys = [k for k, _ in result]
    if len(result) > MAX_TAGS:
        raise InputError(f"at most {MAX_TAGS} tags are allowed, got {len(result)}")
    if len(set(keys)) != len(keys):
        raise InputError("tag keys must be unique")
    if any(not k for k in keys):
        raise InputError("tag keys must not be empty")
    return result


class ObjectStore(ABC):
    """A bucket, container or directory, rooted at a location's prefix."""

    provider: Provider
    #: smallest part the provider accepts in a multipart upload (all but the last part)
    min_part_size: int = 5 * MiB
    #: largest number of parts in one upload
    max_parts: int = 10_000
    #: how many keys one batch delete takes
    delete_batch: int = 1000

    def __init__(self, location: Location, config: StoreConfig) -> None:
        self.location = location
        self.config = config
        self.limiter = BandwidthLimiter(config.max_bandwidth) if config.max_bandwidth else None
        #: called before each slice of every upload (a job's checkpoint: pause or cancel)
        self.gate: Callable[[], None] | None = None
        #: told the size of every upload slice and download chunk (a job's bandwidth samples)
        self.meter: Callable[[int], None] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    # ---- public API -------------------------------------------------------------------

    def __enter__(self) -> ObjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release threads and connections; pending writers must be closed first."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def describe(self) -> str:
        return self.location.display()

    def key(self, relative: str) -> str:
        """The full key inside the bucket for a key relative to the prefix."""
        return self.location.child(relative)

    def full_prefix(self, prefix: str) -> str:
        """The listing prefix inside the bucket for a prefix relative to the location."""
        if not prefix:
            return self.location.prefix + "/" if self.location.prefix else ""
        return self.key(prefix) + ("/" if prefix.endswith("/") else "")

    def relative(self, full_key: str) -> str:
        prefix = self.location.prefix
        if prefix and full_key.startswith(prefix + "/"):
            return full_key[len(prefix) + 1 :]
        return full_key

    @property
    def chunk_size(self) -> int:
        """The multipart chunk size: at least --min-chunk-size and the provider's minimum."""
        wanted = self.config.min_chunk_size or self.default_chunk_size()
        size = max(wanted, self.min_part_size)
        if self.config.max_bandwidth:
            # Under a cap, parts of about half a second keep the cap smooth where the
            # provider allows parts that small.
            size = max(self.min_part_size, min(size, self.config.max_bandwidth // 2))
        return size

    def default_chunk_size(self) -> int:
        return 16 * MiB

    def check(self) -> None:
        """Fail unless the endpoint answers, the credentials work and the container exists."""
        self._check()

    def put_bytes(self, key: str, data: bytes, options: PutOptions = PutOptions()) -> None:
        """Store a small object in one request (retried as a whole)."""
        self._retry(lambda: self._put(key, self.payload(data), options), f"put {key}")

    def payload(self, data: bytes | bytearray | memoryview) -> Payload:
        """A request body for data, under this store's limiter, gate and meter."""
        return Payload(data, self.limiter, self.gate, self.meter)

    def open_writer(
        self, key: str, options: PutOptions = PutOptions(), chunk_size: int | None = None
    ) -> ObjectWriter:
        """A streaming writer for an object of unknown length."""
        return ObjectWriter(self, key, options, chunk_size or self.chunk_size)

    def get_bytes(self, key: str) -> bytes:
        with self.open_reader(key) as reader:
            return reader.read()

    def open_reader(self, key: str, start: int = 0, length: int | None = None) -> ObjectReader:
        """A file-like reader that resumes with a ranged read after a dropped connection."""
        return ObjectReader(self, key, start, length)

    def open_prefetching_reader(
        self,
        key: str,
        size: int | None = None,
        part_size: int = 8 * MiB,
        jobs: int | None = None,
        limit: threading.Semaphore | None = None,
    ) -> PrefetchingReader:
        """A sequential reader fed by `jobs` concurrent ranged reads ahead of it.

        Memory is bounded by jobs x part_size; each range is retried on its own. `limit`, a
        semaphore shared by several readers, caps the ranged reads in flight across them.
        """
        total = self.head(key).size if size is None else size
        return PrefetchingReader(self, key, total, part_size, jobs or self.config.jobs, limit)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Exactly length bytes from start (fewer only at the end of the object)."""
        with self.open_reader(key, start, length) as reader:
            return reader.read()

    def head(self, key: str) -> ObjectInfo:
        return self._retry(lambda: self._head(key), f"head {key}")

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    def list_entries(
        self, prefix: str = "", delimiter: str | None = None, page_size: int | None = None
    ) -> Iterator[ObjectInfo | CommonPrefix]:
        """Objects (and common prefixes with a delimiter) under prefix, every page.

        A listing that fails on a later page is resumed, never repeated (RetryPolicy.stream).
        """
        yield from self.config.retry.stream(
            lambda: self._list(prefix, delimiter, page_size),
            f"list {prefix or '/'}",
            lambda item: item.key if isinstance(item, ObjectInfo) else "\0" + item.prefix,
        )

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for item in self.list_entries(prefix):
            if isinstance(item, ObjectInfo):
                yield item

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete keys in provider-sized batches; missing keys are not an error."""
        batch: list[str] = []
        count = 0
        for key in keys:
            batch.append(key)
            if len(batch) >= self.delete_batch:
                count += self._delete_batch(batch)
                batch = []
        if batch:
            count += self._delete_batch(batch)
        return count

    def get_tags(self, key: str) -> dict[str, str]:
        return self._retry(lambda: self._get_tags(key), f"get tags of {key}")

    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        validate_tags(tags.items())
        self._retry(lambda: self._set_tags(key, dict(tags)), f"set tags of {key}")

    def set_storage_class(self, key: str, storage_class: str) -> None:
        self._retry(lambda: self._set_storage_class(key, storage_class), f"set class of {key}")

    def list_pending_uploads(self, prefix: str = "") -> list[PendingUpload]:
        pending: list[PendingUpload] = self._retry(
            lambda: self._list_pending(prefix), f"list uploads under {prefix}"
        )
        return pending

    def abort_pending_uploads(self, prefix: str = "") -> int:
        """Abort every unfinished upload under prefix (cleanup after a crash)."""
        pending = self.list_pending_uploads(prefix)
        for upload in pending:
            self._abort_one(upload)
        return len(pending)

    def _abort_one(self, upload: PendingUpload) -> None:
        self._retry(lambda: self._abort_pending(upload), f"abort {upload.key}")

    # ---- shared machinery ---------------------------------------------------------------

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        return self.config.retry.call(fn, what)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=max(1, self.config.jobs), thread_name_prefix="pgvault-upload"
                )
            return self._pool

    def _delete_batch(self, keys: list[str]) -> int:
        self._retry(lambda: self._delete(keys), f"delete {len(keys)} objects")
        return len(keys)

    # ---- backend primitives ---------------------------------------------------------------

    @abstractmethod
    def _check(self) -> None: ...

    @abstractmethod
    def _put(self, key: str, body: Payload, options: PutOptions) -> None: ...

    @abstractmethod
    def _mpu_begin(self, key: str, options: PutOptions) -> Any:
        """Start a multipart upload and return the backend's handle for it."""

    @abstractmethod
    def _mpu_part(self, handle: Any, number: int, offset: int, body: Payload) -> Any:
        """Upload part `number` (1-based) found at `offset`; return what completion needs."""

    @abstractmethod
    def _mpu_complete(self, handle: Any, parts: list[Any]) -> None: ...

    @abstractmethod
    def _mpu_abort(self, handle: Any) -> None: ...

    @abstractmethod
    def _open_stream(self, key: str, start: int, end: int | None) -> RawStream:
        """An open stream over bytes [start, end) of the object (end None: to the end)."""

    @abstractmethod
    def _head(self, key: str) -> ObjectInfo: ...

    @abstractmethod
    def _list(
        self, prefix: str, delimiter: str | None, page_size: int | None
    ) -> Iterator[ObjectInfo | CommonPrefix]: ...

    @abstractmethod
    def _delete(self, keys: list[str]) -> None: ...

    @abstractmethod
    def _get_tags(self, key: str) -> dict[str, str]: ...

    @abstractmethod
    def _set_tags(self, key: str, tags: dict[str, str]) -> None: ...

    @abstractmethod
    def _set_storage_class(self, key: str, storage_class: str) -> None: ...

    @abstractmethod
    def _list_pending(self, prefix: str) -> list[PendingUpload]: ...

    @abstractmethod
    def _abort_pending(self, upload: PendingUpload) -> None: ...


class RawStream:
    """What a backend returns for a ranged GET: read(n) until b'' and close()."""

    def read(self, n: int) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class ObjectWriter:
    """Streams an object of unknown length as parts, with at most `jobs` parts in flight.

    Memory is bounded by (jobs + 1) chunks. An object that fits in one chunk is stored with
    a single request. Closing completes the upload; an exception inside a `with` block, or
    abort(), aborts it so that no unfinished upload is left behind.
    """

    def __init__(self, store: ObjectStore, key: str, options: PutOptions, chunk_size: int):
        if chunk_size < store.min_part_size:
            raise InputError(
                f"chunk size {chunk_size} is below the provider minimum {store.min_part_size}"
            )
        self.store = store
        self.key = key
        self.options = options
        self.chunk_size = chunk_size
        self.bytes_written = 0
        self._buffer = bytearray()
        self._handle: Any = None
        self._next_part = 1
        self._offset = 0
        self._parts: dict[int, Any] = {}
        self._inflight: deque[tuple[int, Future[Any]]] = deque()
        self._closed = False
        self._lock = threading.Lock()

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def parts_started(self) -> int:
        return self._next_part - 1

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise StorageError(f"write to closed upload of {self.key}")
        view = memoryview(data).cast("B")
        size = len(view)
        while len(view):
            room = self.chunk_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) >= self.chunk_size:
                # The full buffer becomes the part as it is (no copy); writes go on in a
                # fresh one, so memory stays at the parts in flight plus one buffer.
                full, self._buffer = self._buffer, bytearray()
                self._dispatch(full)
        self.bytes_written += size
        return size

    def close(self) -> int:
        """Finish the upload and return the object's size."""
        if self._closed:
            return self.bytes_written
        try:
            if self._handle is None:
                data = bytes(self._buffer)
                self._buffer = bytearray()
                self.store.put_bytes(self.key, data, self.options)
            else:
                if self._buffer:
                    full, self._buffer = self._buffer, bytearray()
                    self._dispatch(full)
                self._drain(0)
                parts = [self._parts[n] for n in sorted(self._parts)]
                self.store._retry(
                    lambda: self.store._mpu_complete(self._handle, parts), f"complete {self.key}"
                )
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.bytes_written

    def abort(self) -> None:
        """Abort the upload; uploaded parts are discarded. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        for _, future in self._inflight:
            future.cancel()
        for _, future in self._inflight:
            with contextlib.suppress(BaseException):  # the abort below is what matters
                future.result()
        self._inflight.clear()
        if self._handle is not None:
            try:
                self.store._retry(lambda: self.store._mpu_abort(self._handle), f"abort {self.key}")
            except PgvaultError as exc:
                log.warning("could not abort the upload of %s: %s", self.key, exc)

    def _dispatch(self, data: bytes | bytearray) -> None:
        if self._handle is None:
            self._handle = self.store._retry(
                lambda: self.store._mpu_begin(self.key, self.options), f"start upload {self.key}"
            )
        number = self._next_part
        if number > self.store.max_parts:
            raise StorageError(
                f"{self.key} needs more than {self.store.max_parts} parts; "
                "raise --min-chunk-size or lower --max-archive-size"
            )
        self._next_part += 1
        offset = self._offset
        self._offset += len(data)
        self._drain(max(0, self.store.config.jobs - 1))
        future = self.store._executor().submit(self._upload_part, number, offset, data)
        self._inflight.append((number, future))

    def _upload_part(self, number: int, offset: int, data: bytes | bytearray) -> Any:
        def attempt() -> Any:
            body = self.store.payload(data)
            return self.store._mpu_part(self._handle, number, offset, body)

        return self.store._retry(attempt, f"upload part {number} of {self.key}")

    def _drain(self, keep: int) -> None:
        """Wait until at most `keep` parts are in flight, raising the first failure."""
        while len(self._inflight) > keep:
            done, _ = wait([f for _, f in self._inflight], return_when=FIRST_COMPLETED)
            remaining: deque[tuple[int, Future[Any]]] = deque()
            for number, future in self._inflight:
                if future in done:
                    self._parts[number] = future.result()
                else:
                    remaining.append((number, future))
            self._inflight = remaining


class ObjectReader(io.RawIOBase):
    """Reads [start, start+length) of an object; a dropped stream is resumed where it broke."""

    def __init__(self, store: ObjectStore, key: str, start: int, length: int | None):
        super().__init__()
        self.store = store
        self.key = key
        self._pos = start
        self._end = None if length is None else start + length
        self._stream: RawStream | None = None
        self._failures = 0
        self._eof = length == 0

    def readable(self) -> bool:
        return True

    def _open(self) -> RawStream:
        if self._stream is None:
            self._stream = self.store._retry(
                lambda: self.store._open_stream(self.key, self._pos, self._end), f"get {self.key}"
            )
        return self._stream

    def _read_some(self, size: int) -> bytes:
        """Up to size bytes from the stream (b'' at the end), reopening it after a drop."""
        if self._eof:
            return b""
        want = size if self._end is None else min(size, self._end - self._pos)
        if want <= 0:
            self._eof = True
            return b""
        policy = self.store.config.retry
        while True:
            try:
                chunk = self._open().read(want)
                break
            except TransientError:
                self._drop_stream()
                self._failures += 1
                if self._failures >= policy.attempts:
                    raise
                time.sleep(policy.delay(self._failures))
        if not chunk:
            # The SDKs raise on a body shorter than its Content-Length, so a clean end
            # here is the end of the object (a range may reach past it).
            self._eof = True
            return b""
        self._pos += len(chunk)
        self._failures = 0
        if self.store.meter is not None:
            self.store.meter(len(chunk))
        return chunk

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        target = memoryview(buffer).cast("B")
        chunk = self._read_some(len(target))
        target[: len(chunk)] = chunk
        return len(chunk)

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size >= 0:
            return self._read_some(size)
        parts = []
        while chunk := self._read_some(READ_BLOCK):
            parts.append(chunk)
        return b"".join(parts)

    def _drop_stream(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(Exception):  # the stream is already broken
                self._stream.close()
            self._stream = None

    def close(self) -> None:
        self._drop_stream()
        super().close()


class PrefetchingReader(io.RawIOBase):
    """Reads an object front to back while the next ranges download concurrently."""

    def __init__(
        self,
        store: ObjectStore,
        key: str,
        size: int,
        part_size: int,
        jobs: int,
        limit: threading.Semaphore | None = None,
    ):
        super().__init__()
        self.store = store
        self.key = key
        self.size = size
        self._limit = limit
        self._part = part_size
        self._next_start = 0
        self._pending: deque[Future[bytes]] = deque()
        self._pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="pgvault-get")
        self._depth = max(1, jobs)
        self._current = memoryview(b"")
        self._fill()

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        while len(self._pending) < self._depth and self._next_start < self.size:
            start = self._next_start
            length = min(self._part, self.size - start)
            self._next_start += length
            self._pending.append(self._pool.submit(self._fetch, start, length))

    def set_depth(self, depth: int) -> None:
        """How many ranges to keep requested ahead of the reader (at most `jobs` at once)."""
        self._depth = max(1, depth)

    def _fetch(self, start: int, length: int) -> bytes:
        if self._limit is not None:
            with self._limit:
                data = self.store.read_range(self.key, start, length)
        else:
            data = self.store.read_range(self.key, start, length)
        if len(data) != length:
            raise StorageError(
                f"{self.key}: expected {length} bytes at offset {start}, got {len(data)} "
                "(the object changed or was truncated)"
            )
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        target = memoryview(buffer).cast("B")
        while not len(self._current):
            if not self._pending:
                return 0
            self._current = memoryview(self._pending.popleft().result())
            self._fill()
        n = min(len(target), len(self._current))
        target[:n] = self._current[:n]
        self._current = self._current[n:]
        return n

    def read_chunk(self) -> bytes:
        """The next downloaded part as it is (no copy), b'' at the end."""
        if len(self._current):
            chunk, self._current = bytes(self._current), memoryview(b"")
            return chunk
        if not self._pending:
            return b""
        data = self._pending.popleft().result()
        self._fill()
        return data

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        super().close()


__all__ = [
    "NO_RETRY",
    "CommonPrefix",
    "ObjectInfo",
    "ObjectReader",
    "ObjectStore",
    "ObjectWriter",
    "PendingUpload",
    "PrefetchingReader",
    "PutOptions",
    "RawStream",
    "StoreConfig",
    "validate_tags",
]
