"""What a backend implements, and the machinery its writers and readers share.

A backend implements small raw primitives, one request each, with its SDK's errors
translated to core.errors (core.storage.translate). `Backend` also owns what every transfer
goes through: retries, the upload thread pool, and request bodies under the bandwidth
limiter, the job's gate and its meter. Keys are relative to the location's prefix.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

from core.errors import InputError
from core.storage.bandwidth import BandwidthLimiter, Payload
from core.storage.config import StoreConfig
from core.storage.objects import (
    CommonPrefix,
    ObjectInfo,
    PendingUpload,
    PutOptions,
    StoredChunk,
)
from core.storage.translate import ErrorTable, Guard
from core.urls import Location, Provider

T = TypeVar("T")
MiB = 1024 * 1024


class RawStream:
    """What a backend returns for a ranged GET: read(n) until b'' and close()."""

    def read(self, n: int) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def buffered(self) -> int:
        """Bytes already downloaded and held here: read at once, a pause has nothing to stop."""
        return 0

    def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class Backend(ABC):
    """A bucket, container or directory as raw requests, rooted at a location's prefix."""

    provider: Provider
    #: smallest part the provider accepts in a multipart upload (all but the last part)
    min_part_size: int = 5 * MiB
    #: largest number of parts in one upload
    max_parts: int = 10_000
    #: how many keys one batch delete takes
    delete_batch: int = 1000
    #: the class or tier pgvault moves an object to for the archive tier (None: not built)
    archive_class: str | None = None
    #: the classes or tiers a listing shows for an object that must be rehydrated to be read
    archived_classes: frozenset[str] = frozenset()
    #: why this provider has no archive tier in pgvault (when archive_class is None)
    archive_refusal: str = "this store has no archive tier"
    #: the provider's SDK exceptions to pgvault's errors (core.storage.translate)
    ERRORS: ClassVar[ErrorTable] = ErrorTable(())

    def __init__(self, location: Location, config: StoreConfig) -> None:
        if config.object_lock_days is not None and location.provider is not Provider.S3:
            raise InputError(
                f"S3 Object Lock (immutability) is for S3 destinations only; "
                f"{location.display()} is {location.provider.value}"
            )
        self.location = location
        self.config = config
        self.limiter = BandwidthLimiter(config.max_bandwidth) if config.max_bandwidth else None
        self.download_limiter = (
            BandwidthLimiter(config.max_download_bandwidth)
            if config.max_download_bandwidth
            else None
        )
        #: called before each slice of every upload (a job's checkpoint: pause or cancel)
        self.gate: Callable[[], None] | None = None
        #: told the size of every upload slice and download chunk (a job's bandwidth samples)
        self.meter: Callable[[int], None] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def close(self) -> None:
        """Release threads and connections; pending writers must be closed first."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # ---- keys ---------------------------------------------------------------------------------

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

    # ---- shared machinery ---------------------------------------------------------------

    def payload(self, data: bytes | bytearray | memoryview, sha256: str | None = None) -> Payload:
        """A request body for data, under this store's limiter, gate and meter."""
        return Payload(data, self.limiter, self.gate, self.meter, sha256)

    def _guard(self, what: str) -> Guard:
        """Translate the SDK's errors inside a `with`; a missing bucket named in the error."""
        return self.ERRORS.guard(what, self.location.bucket)

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        return self.config.retry.call(fn, what)

    def _put_whole(
        self,
        key: str,
        data: bytes | bytearray | memoryview,
        options: PutOptions,
        sha256: str | None = None,
    ) -> None:
        """Store an object in one request, retried as a whole."""
        self._retry(lambda: self._put(key, self.payload(data, sha256), options), f"put {key}")

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=max(1, self.config.jobs), thread_name_prefix="pgvault-upload"
                )
            return self._pool

    # ---- backend primitives ---------------------------------------------------------------

    @abstractmethod
    def _check(self) -> None: ...

    def _check_readable(self) -> None:
        """What a reader needs (check_readable); a cloud container is checked as by _check."""
        self._check()

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

    # Resuming an upload a killed process left: stores that cannot return None.

    def _mpu_token(self, handle: Any) -> str | None:
        """What names this upload for a later process (None: it cannot be resumed)."""
        return None

    def _mpu_reopen(
        self, key: str, token: str, options: PutOptions, chunks: tuple[StoredChunk, ...]
    ) -> tuple[Any, int] | None:
        """The upload again and how many of `chunks`, from the first, it holds as recorded;
        None when it is gone. Anything stored past those is dropped or overwritten."""
        return None

    def _pending_token(self, upload: PendingUpload) -> str:
        """The token _mpu_token gave for an upload a listing found (a local partial file's
        name, S3's upload ID)."""
        return upload.upload_id.rsplit("/", 1)[-1]

    def _mpu_cut(self, handle: Any, offset: int) -> None:
        """Forget what the upload holds from `offset` on (a reused upload diverged there).

        Stores whose completion names its parts (S3) need nothing: unnamed parts go."""
        return None

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

    def _archive(self, key: str) -> None:
        """Move the object to the archive tier in place (same key)."""
        if self.archive_class is None:
            raise InputError(f"{self.location.display()}: {self.archive_refusal}")
        self._set_storage_class(key, self.archive_class)

    def _rehydrate(self, key: str) -> bool:
        """Start or continue bringing an archived object back online; True once it is."""
        raise InputError(f"{self.location.display()}: {self.archive_refusal}")

    @abstractmethod
    def _list_pending(self, prefix: str) -> list[PendingUpload]: ...

    @abstractmethod
    def _abort_pending(self, upload: PendingUpload) -> None: ...
