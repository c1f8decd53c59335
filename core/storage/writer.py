"""Streaming multipart writes: parts of an object of unknown length, `jobs` in flight."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from core.errors import InputError, PgvaultError, StorageError
from core.storage.backend import Backend
from core.storage.objects import PutOptions, ResumedUpload, StoredChunk

log = logging.getLogger("pgvault.storage")


class ObjectWriter:
    """Streams an object of unknown length as parts, with at most `jobs` parts in flight.

    Memory is at most jobs + 1 chunk buffers (`jobs` uploading, one filling), allocated
    once and reused for the next parts, so a long object does not churn the allocator
    (glibc keeps freed 16 MiB buffers in its heap rather than returning them). An object
    that fits in one chunk is stored with a single request from a buffer that grows only as
    far as the object. Closing completes the upload; an exception inside a `with` block, or
    abort(), aborts it so that no unfinished upload is left behind.

    Given `resume`, the writer continues that upload: while the parts it produces are the
    recorded ones (same size and SHA-256), they are not sent again; from the first that
    differs on, parts are uploaded over the old ones. `on_chunk` hears of every part stored.
    """

    def __init__(
        self,
        store: Backend,
        key: str,
        options: PutOptions,
        chunk_size: int,
        resume: ResumedUpload | None = None,
    ):
        if chunk_size < store.min_part_size:
            raise InputError(
                f"chunk size {chunk_size} is below the provider minimum {store.min_part_size}"
            )
        self.store = store
        self.key = key
        self.options = options
        self.chunk_size = chunk_size
        self.bytes_written = 0
        self._buffer = bytearray()  # the chunk being filled: its first _filled bytes
        self._filled = 0
        self._spare: list[bytearray] = []  # full-size buffers whose part is stored
        self._handle: Any = None
        self._next_part = 1
        self._offset = 0
        self._parts: dict[int, Any] = {}
        self._inflight: deque[tuple[int, Future[Any], bytearray]] = deque()
        self._closed = False
        self._lock = threading.Lock()
        #: told of each part once the store has it, in the writer's thread
        self.on_chunk: Callable[[StoredChunk], None] | None = None
        self.reused_bytes = 0  # bytes of recorded parts not sent again
        self._digests: dict[int, tuple[int, str]] = {}  # part -> size, SHA-256
        self._reusable: dict[int, StoredChunk] = {}
        if resume is not None:
            self._reopen(resume)

    def _reopen(self, resume: ResumedUpload) -> None:
        reopened = self.store._retry(
            lambda: self.store._mpu_reopen(self.key, resume.token, self.options, resume.chunks),
            f"reopen upload {self.key}",
        )
        if reopened is None:
            log.info("the upload of %s is gone: it starts over", self.key)
            return
        self._handle, held = reopened
        self._reusable = {c.number: c for c in resume.chunks[:held]}

    @property
    def token(self) -> str | None:
        """What names the upload for a later process (None: not resumable, or not begun)."""
        return None if self._handle is None else self.store._mpu_token(self._handle)

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

    @property
    def buffered_bytes(self) -> int:
        """Bytes held in this writer's chunk buffers (filling, uploading and spare)."""
        held = [self._buffer, *self._spare, *(buffer for _, _, buffer in self._inflight)]
        return sum(len(b) for b in held)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise StorageError(f"write to closed upload of {self.key}")
        view = memoryview(data).cast("B")
        size = len(view)
        while len(view):
            n = min(self.chunk_size - self._filled, len(view))
            end = self._filled + n
            if len(self._buffer) >= end:
                self._buffer[self._filled : end] = view[:n]
            else:  # the object's first chunk grows with it (filled == len)
                self._buffer += view[:n]
            self._filled = end
            view = view[n:]
            if self._filled == self.chunk_size:
                self._dispatch(self._buffer)
                self._buffer = self._spare.pop() if self._spare else bytearray(self.chunk_size)
                self._filled = 0
        self.bytes_written += size
        return size

    def close(self) -> int:
        """Finish the upload and return the object's size."""
        if self._closed:
            return self.bytes_written
        try:
            if self._handle is None:
                data = bytes(memoryview(self._buffer)[: self._filled])
                self._release_buffers()
                self.store._put_whole(self.key, data, self.options)
            else:
                if self._filled:
                    self._dispatch(self._buffer, self._filled)
                self._drain(0)
                self._release_buffers()
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
        for _, future, _ in self._inflight:
            future.cancel()
        for _, future, _ in self._inflight:
            with contextlib.suppress(BaseException):  # the abort below is what matters
                future.result()
        self._inflight.clear()
        self._release_buffers()
        if self._handle is not None:
            try:
                self.store._retry(lambda: self.store._mpu_abort(self._handle), f"abort {self.key}")
            except PgvaultError as exc:
                log.warning("could not abort the upload of %s: %s", self.key, exc)

    def _release_buffers(self) -> None:
        self._buffer, self._filled, self._spare = bytearray(), 0, []

    def _dispatch(self, buffer: bytearray, length: int | None = None) -> None:
        """Upload the buffer's first `length` bytes (all of it by default) as the next part;
        the buffer is reused once that part is stored."""
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
        data = memoryview(buffer)[:length] if length is not None else buffer
        offset = self._offset
        self._offset += len(data)
        if number in self._reusable:
            self._digests[number] = _digest(data)
        if self._reuse(number, offset, buffer):
            return
        self._drain(max(0, self.store.config.jobs - 1))
        future = self.store._executor().submit(self._upload_part, number, offset, data)
        self._inflight.append((number, future, buffer))

    def _reuse(self, number: int, offset: int, buffer: bytearray) -> bool:
        """Keep the recorded part if this one is the same bytes; else upload from here on."""
        recorded = self._reusable.get(number)
        if recorded is None:
            return False
        if self._digests[number] != (recorded.size, recorded.sha256):
            log.info("%s differs from part %d on: uploading again from there", self.key, number)
            self._reusable = {}
            self.store._retry(lambda: self.store._mpu_cut(self._handle, offset), f"cut {self.key}")
            return False
        self._parts[number] = recorded.receipt
        self.reused_bytes += recorded.size
        if len(buffer) == self.chunk_size:
            self._spare.append(buffer)
        if self.on_chunk is not None:
            self.on_chunk(recorded)
        return True

    def _upload_part(self, number: int, offset: int, data: bytearray | memoryview) -> Any:
        if self.on_chunk is not None:  # here, on the upload threads: hashlib frees the GIL
            self._digests[number] = _digest(data)

        def attempt() -> Any:
            body = self.store.payload(data)
            return self.store._mpu_part(self._handle, number, offset, body)

        return self.store._retry(attempt, f"upload part {number} of {self.key}")

    def _drain(self, keep: int) -> None:
        """Wait until at most `keep` parts are in flight, raising the first failure."""
        while len(self._inflight) > keep:
            done, _ = wait([f for _, f, _ in self._inflight], return_when=FIRST_COMPLETED)
            remaining: deque[tuple[int, Future[Any], bytearray]] = deque()
            for number, future, buffer in self._inflight:
                if future in done:
                    self._parts[number] = future.result()
                    if len(buffer) == self.chunk_size:
                        self._spare.append(buffer)
                    self._stored(number)
                else:
                    remaining.append((number, future, buffer))
            self._inflight = remaining

    def _stored(self, number: int) -> None:
        if self.on_chunk is not None:
            size, sha256 = self._digests.pop(number)
            self.on_chunk(StoredChunk(number, size, sha256, self._parts[number]))


def _digest(data: bytearray | memoryview) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()
