"""ObjectStore: the API the engine uses to talk to a bucket, container or directory.

Every backend subclasses it (core.storage.local, s3, azure, gcs) and implements the raw
primitives of core.storage.backend; this class adds retries around each request,
streaming multipart writes, resumable and prefetching reads, listings resumed after a
failed page, and batched deletes. Keys are relative to the location's prefix.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from core.errors import ObjectNotFound
from core.storage.backend import Backend, MiB
from core.storage.objects import (
    PLAIN,
    CommonPrefix,
    ObjectInfo,
    PendingUpload,
    PutOptions,
    ResumedUpload,
    validate_tags,
)
from core.storage.readers import ObjectReader, PrefetchingReader, read_range
from core.storage.writer import ObjectWriter


class ObjectStore(Backend):
    """A bucket, container or directory, rooted at a location's prefix."""

    def __enter__(self) -> ObjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        return self.location.display()

    def local_file(self, key: str) -> Path | None:
        """The file holding the object's bytes, as they are, when this store is a local
        directory and the object is readable there; None for cloud stores. A reader may
        link or copy it, never open it for writing: it is the stored object."""
        return None

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
        """Fail unless the endpoint answers, the credentials work and the container exists
        (retried like every request: a throttled or dropped first call is not an outage)."""
        self._retry(self._check, "check the container")

    def check_readable(self) -> None:
        """check() for a command that only reads (a restore): a local directory must exist
        and be readable, never writable nor still to be made."""
        self._retry(self._check_readable, "check the container")

    def put_bytes(
        self,
        key: str,
        data: bytes | bytearray | memoryview,
        options: PutOptions = PLAIN,
        sha256: str | None = None,
    ) -> None:
        """Store a small object in one request (retried as a whole); sha256: data's digest
        (hex) when the caller has it, so a store that checks content does not hash again."""
        self._put_whole(key, data, options, sha256)

    def open_writer(
        self,
        key: str,
        options: PutOptions = PLAIN,
        chunk_size: int | None = None,
        resume: ResumedUpload | None = None,
    ) -> ObjectWriter:
        """A streaming writer for an object of unknown length (`resume`: continuing an
        unfinished upload, whose recorded parts are not sent again if they match)."""
        return ObjectWriter(self, key, options, chunk_size or self.chunk_size, resume)

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
        return read_range(self, key, start, length)

    def object_lock_enabled(self) -> bool:
        """Whether the bucket has S3 Object Lock enabled (only S3 has it)."""
        return False

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

    def is_archived(self, info: ObjectInfo) -> bool:
        """Whether a listed or headed object sits in the archive tier (not readable as is)."""
        return info.storage_class is not None and info.storage_class in self.archived_classes

    def archive(self, key: str) -> None:
        """Move an object to the provider's archive tier, in place (core.catalog.tier)."""
        self._retry(lambda: self._archive(key), f"archive {key}")

    def rehydrate(self, key: str) -> bool:
        """Start or continue a rehydration; True once the object is readable in the normal tier.

        Idempotent: call it again until it answers True (S3 restores take hours)."""
        done: bool = self._retry(lambda: self._rehydrate(key), f"rehydrate {key}")
        return done

    def list_pending_uploads(self, prefix: str = "") -> list[PendingUpload]:
        pending: list[PendingUpload] = self._retry(
            lambda: self._list_pending(prefix), f"list uploads under {prefix}"
        )
        return pending

    def abort_pending_uploads(self, prefix: str = "", keep: frozenset[str] = frozenset()) -> int:
        """Abort every unfinished upload under prefix (cleanup after a crash) but those
        whose token (core.storage.backend._mpu_token) is in `keep`."""
        pending = self.list_pending_uploads(prefix)
        if keep:
            pending = [u for u in pending if self._token(u) not in keep]
        for upload in pending:
            self._abort_one(upload)
        return len(pending)

    def abort_uploads_of(self, key: str, keep: str | None = None) -> int:
        """Abort the unfinished uploads of exactly `key` (a killed writer's), none other,
        but the one whose token is `keep` (an upload a new writer continues)."""
        pending = [u for u in self.list_pending_uploads(key) if u.key == key]
        if keep is not None:
            pending = [u for u in pending if self._token(u) != keep]
        for upload in pending:
            self._abort_one(upload)
        return len(pending)

    def _token(self, upload: PendingUpload) -> str:
        return self._retry(lambda: self._pending_token(upload), f"look at {upload.key}")

    def _abort_one(self, upload: PendingUpload) -> None:
        self._retry(lambda: self._abort_pending(upload), f"abort {upload.key}")

    def _delete_batch(self, keys: list[str]) -> int:
        self._retry(lambda: self._delete(keys), f"delete {len(keys)} objects")
        return len(keys)
