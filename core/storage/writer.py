"""Streaming multipart writes: parts of an object of unknown length, `jobs` in flight."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from core.errors import InputError, PgvaultError, StorageError
from core.storage.backend import Backend
from core.storage.objects import PutOptions

log = logging.getLogger("pgvault.storage")


class ObjectWriter:
    """Streams an object of unknown length as parts, with at most `jobs` parts in flight.

    Memory is bounded by (jobs + 1) chunks. An object that fits in one chunk is stored with
    a single request. Closing completes the upload; an exception inside a `with` block, or
    abort(), aborts it so that no unfinished upload is left behind.
    """

    def __init__(self, store: Backend, key: str, options: PutOptions, chunk_size: int):
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
                self.store._put_whole(self.key, data, self.options)
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
