"""Reading objects: a reader that resumes after a dropped stream, and one that prefetches."""

from __future__ import annotations

import contextlib
import io
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from core.errors import StorageError
from core.storage.backend import Backend, MiB, RawStream
from core.storage.retry import RETRYABLE

READ_BLOCK = 1 * MiB
#: bytes read between two calls of the store's gate: a paused job's downloads stop within it
GATED_READ = 256 * 1024


class ObjectReader(io.RawIOBase):
    """Reads [start, start+length) of an object; a dropped stream is resumed where it broke."""

    def __init__(self, store: Backend, key: str, start: int, length: int | None):
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
            self._stream = self.store._open_stream(self.key, self._pos, self._end)
        return self._stream

    def _read_some(self, size: int) -> bytes:
        """Up to size bytes from the stream (b'' at the end), reopening it after a drop.

        Opening and reading share one count of failures: the store's policy is the only
        retry layer (a failing GET is sent `attempts` times, not attempts squared).
        """
        if self._eof:
            return b""
        want = size if self._end is None else min(size, self._end - self._pos)
        if want <= 0:
            self._eof = True
            return b""
        gate = self.store.gate
        if gate is not None:
            gate()
        while True:
            try:
                stream = self._open()
                if gate is not None:
                    # A job's pause blocks at the gate and its cancel raises there, every
                    # GATED_READ bytes of what is still to download.
                    want = min(want, max(GATED_READ, stream.buffered()))
                chunk = stream.read(want)
                break
            except RETRYABLE as exc:
                self._drop_stream()
                self._failures += 1
                self.store.config.retry.wait(self._failures, f"get {self.key}", exc)
        if not chunk:
            # The SDKs raise on a body shorter than its Content-Length, so a clean end
            # here is the end of the object (a range may reach past it).
            self._eof = True
            return b""
        self._pos += len(chunk)
        self._failures = 0
        if self.store.download_limiter is not None:
            self.store.download_limiter.consume(len(chunk))
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
        # A bounded range is asked for whole: a local file or an SDK body returns it in one
        # piece, handed on as it is. Pieces (a job's gated reads, a resumed stream) go into
        # one growing buffer, whose getvalue() does not copy: joining a list of them would
        # hold every prefetched range twice for a moment.
        step = READ_BLOCK if self._end is None else max(1, self._end - self._pos)
        first = self._read_some(step)
        second = self._read_some(step) if first else b""
        if not second:
            return first
        gathered = io.BytesIO()
        gathered.write(first)
        del first
        chunk = second
        while chunk:
            gathered.write(chunk)
            chunk = self._read_some(step)
        return gathered.getvalue()

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
        store: Backend,
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

    @property
    def ranges_ahead(self) -> int:
        """Ranges requested and not yet handed to the reader (each held once downloaded)."""
        return len(self._pending)

    def set_depth(self, depth: int) -> None:
        """How many ranges to keep requested ahead of the reader (at most `jobs` at once)."""
        self._depth = max(1, depth)

    def _fetch(self, start: int, length: int) -> bytes:
        with self._limit or contextlib.nullcontext():
            data = read_range(self.store, self.key, start, length)
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


def read_range(store: Backend, key: str, start: int, length: int) -> bytes:
    """Exactly length bytes from start (fewer only at the end of the object)."""
    with ObjectReader(store, key, start, length) as reader:
        return reader.read()
