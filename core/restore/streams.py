"""The plumbing of the fetch phase: the shared read budget, stored bytes, a bounded pipe."""

from __future__ import annotations

import threading
from collections import deque

from core.catalog.manifest import Checksum
from core.progress import Reporter
from core.storage import PrefetchingReader

QUEUE_DEPTH = 2  # decompressed reads waiting for the writing thread (2 MiB each)
#: the most of a downloaded range handed on between two checkpoints: after a pause, no more
#: than this (and the pipe's queue) reaches the recovery directory
CHUNK = 1024 * 1024


class Aborted(Exception):
    """Another part failed: this one stops quietly."""


class Budget:
    """Ranged reads in flight across every part (-J), shared out as parts come and go."""

    def __init__(self, jobs: int) -> None:
        self.jobs = max(1, jobs)
        self.semaphore = threading.Semaphore(self.jobs)
        self._readers: list[PrefetchingReader] = []
        self._lock = threading.Lock()

    def _share(self) -> None:
        if self._readers:
            # One range ahead of the one being read is enough to overlap them; more only
            # when -J leaves reads to spare: every range waiting is 8 MiB held.
            depth = max(1, -(-self.jobs // len(self._readers)))
            for reader in self._readers:
                reader.set_depth(depth)

    def add(self, reader: PrefetchingReader) -> None:
        with self._lock:
            self._readers.append(reader)
            self._share()

    def remove(self, reader: PrefetchingReader) -> None:
        with self._lock:
            if reader in self._readers:
                self._readers.remove(reader)
            self._share()


class StoredBytes:
    """The stored bytes of one archive, in order: counted, checksummed, reported."""

    def __init__(
        self,
        reader: PrefetchingReader,
        checksum: Checksum | None,
        reporter: Reporter,
        abort: threading.Event,
    ) -> None:
        self._reader = reader
        self._checksum = checksum
        self._reporter = reporter
        self._abort = abort
        self._buffer = memoryview(b"")
        self._range = memoryview(b"")  # what is left of the range read last
        self.size = 0

    def chunk(self) -> bytes:
        """The next CHUNK bytes at most of the downloaded ranges; b'' at the end."""
        if self._abort.is_set():
            raise Aborted
        self._reporter.checkpoint()
        if not len(self._range):
            self._range = memoryview(self._reader.read_chunk())
        data = bytes(self._range[:CHUNK])
        self._range = self._range[CHUNK:]
        if data:
            if self._checksum is not None:
                self._checksum.update(data)
            self.size += len(data)
            self._reporter.advance(len(data))
        return data

    def read(self, n: int) -> bytes:
        if not len(self._buffer):
            self._buffer = memoryview(self.chunk())
        out = bytes(self._buffer[:n])
        self._buffer = self._buffer[n:]
        return out

    def hexdigest(self) -> str | None:
        return self._checksum.hexdigest() if self._checksum is not None else None


class Pipe:
    """A bounded queue between a part's decompressing thread and its writing thread."""

    def __init__(self) -> None:
        self._items: deque[bytes | None] = deque()
        self._cond = threading.Condition()
        self.failed = False

    def put(self, item: bytes | None) -> None:
        with self._cond:
            while len(self._items) >= QUEUE_DEPTH and not self.failed:
                self._cond.wait(0.5)
            if self.failed:
                raise Aborted
            self._items.append(item)
            self._cond.notify_all()

    def get(self) -> bytes | None:
        with self._cond:
            while not self._items and not self.failed:
                self._cond.wait(0.5)
            if self.failed:
                raise Aborted
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def fail(self) -> None:
        with self._cond:
            self.failed = True
            self._cond.notify_all()


__all__ = ["Aborted", "Budget", "Pipe", "StoredBytes"]
