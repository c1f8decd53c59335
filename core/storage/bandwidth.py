"""One bandwidth limiter shared by every concurrent transfer of an operation.

Each transfer reserves its bytes in slices of at most SLICE bytes; a reservation is a time
slot on one shared timeline, so the rate over any window is the cap plus at most one burst
allowance, whatever the number of threads. Slices are charged as the SDK reads the request
body, i.e. while bytes go onto the socket, not once per part.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator

SLICE = 64 * 1024


class BandwidthLimiter:
    """A reservation-based limiter: consume(n) returns when n more bytes may be sent."""

    def __init__(
        self,
        bytes_per_second: int,
        burst_seconds: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be positive")
        self.rate = float(bytes_per_second)
        self._burst = burst_seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = clock()

    def consume(self, nbytes: int) -> None:
        """Block until nbytes fit under the cap (callers pass slices of at most SLICE)."""
        if nbytes <= 0:
            return
        with self._lock:
            now = self._clock()
            start = max(self._next, now - self._burst)
            self._next = start + nbytes / self.rate
            wait = start - now
        if wait > 0:
            self._sleep(wait)


class Payload(io.RawIOBase):
    """A seekable read-only view of one part; reads pass the gate and are charged to the
    limiter and the meter.

    Bytes are charged once: a second read of the same range (an SDK rewinding to retry or
    to compute a checksum) is free, so retries do not eat the budget twice.
    """

    def __init__(
        self,
        data: bytes | bytearray | memoryview,
        limiter: BandwidthLimiter | None,
        gate: Callable[[], None] | None = None,
        meter: Callable[[int], None] | None = None,
        sha256: str | None = None,
    ):
        super().__init__()
        self._view = memoryview(data).cast("B")
        #: the bytes' SHA-256 (hex) when known: a store signing or checking the body uses it
        self.sha256 = sha256
        self._limiter = limiter
        # Called before every slice: a paused job blocks here, a cancelled one raises.
        self._gate = gate
        self._meter = meter
        self._pos = 0
        self._charged = 0
        #: off while an SDK reads the body for a signature rather than for the wire
        self.charging = True

    def __len__(self) -> int:
        return len(self._view)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, min(len(self._view), base + offset))
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        target = memoryview(buffer).cast("B")
        n = min(len(target), len(self._view) - self._pos)
        if n <= 0:
            return 0
        if self._gate is not None:
            n = min(n, SLICE)
            self._gate()
        if self._limiter is not None and self.charging:
            n = min(n, SLICE)
        self._charge(self._pos + n)
        target[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        if self._limiter is None and self._gate is None:
            end = len(self._view) if size is None or size < 0 else self._pos + size
            chunk = bytes(self._view[self._pos : end])
            self._charge(self._pos + len(chunk))
            self._pos += len(chunk)
            return chunk
        out = bytearray()
        want = len(self._view) - self._pos if size is None or size < 0 else size
        while want > 0:
            buf = bytearray(min(want, SLICE))
            n = self.readinto(buf)
            if n == 0:
                break
            out += buf[:n]
            want -= n
        return bytes(out)

    def views(self, size: int = 1024 * 1024) -> Iterator[memoryview]:
        """The rest of the payload as zero-copy slices, each through the gate and limiter."""
        if self._gate is not None or self._limiter is not None:
            size = min(size, SLICE)
        while self._pos < len(self._view):
            if self._gate is not None:
                self._gate()
            end = min(len(self._view), self._pos + size)
            self._charge(end)
            view, self._pos = self._view[self._pos : end], end
            yield view

    def _charge(self, end: int) -> None:
        """Charge the bytes up to `end` not charged before: the limiter waits, the meter counts."""
        if not self.charging or end <= self._charged:
            return
        fresh = end - max(self._pos, self._charged)
        if self._limiter is not None:
            self._limiter.consume(fresh)
        if self._meter is not None:
            self._meter(fresh)
        self._charged = end

    def getvalue(self) -> bytes:
        """All bytes, charged as one read from the start."""
        self.seek(0)
        return self.read()
