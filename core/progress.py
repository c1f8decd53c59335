"""The one progress and control interface between long operations and whoever watches them.

Pipelines (backup, restore, verify, WAL push) report through a `Reporter`: the phase, totals,
bytes and files done, bytes on the wire, log lines; and they call `checkpoint()` between
chunks, which blocks
while the job is paused and raises Cancelled once it is cancelled. The job engine provides a
Reporter that persists snapshots for other processes (the console, `jobs watch`) to read;
tests and one-off calls use `Tracker` alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from core.errors import Cancelled

log = logging.getLogger("pgvault.progress")

RATE_WINDOW = 5.0  # seconds of history behind the smoothed rate
SAMPLE_INTERVAL = 1.0  # resolution of the rate samples
_MIN_POINTS = 2  # a rate needs two points of history kept for charts
MAX_SAMPLES = 3600  # one hour of 1 s samples


@dataclass(frozen=True)
class RateSample:
    """Bytes per second on the wire over the second ending at `at` (wall clock)."""

    at: float
    rate: float


@dataclass(frozen=True)
class ProgressSnapshot:
    """A consistent view of an operation's progress at one moment."""

    phase: str
    bytes_done: int
    bytes_total: int | None
    files_done: int
    files_total: int | None
    rate: float
    eta: float | None
    started: float
    updated: float

    @property
    def fraction(self) -> float | None:
        if not self.bytes_total:
            return None
        return min(1.0, self.bytes_done / self.bytes_total)


class Reporter(Protocol):
    """What a pipeline calls. Every method is thread-safe and cheap."""

    def phase(self, name: str) -> None: ...

    def set_totals(
        self, bytes_total: int | None = None, files_total: int | None = None
    ) -> None: ...

    def advance(self, nbytes: int = 0, files: int = 0) -> None: ...

    def transferred(self, nbytes: int) -> None:
        """Count bytes sent to or received from storage: what the bandwidth samples chart."""
        ...

    def log(self, message: str, level: int = logging.INFO) -> None: ...

    def detail(self, key: str, value: str | int | float | bool | None) -> None:
        """Record a fact about the operation for whoever watches (e.g. the backup ID)."""
        ...

    def checkpoint(self) -> None:
        """Return at once when running; block while paused; raise Cancelled when cancelled."""
        ...


class Control:
    """Pause and cancel flags that pipelines honour at their checkpoints."""

    def __init__(self) -> None:
        self._running = threading.Event()
        self._running.set()
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self.reason = ""

    @property
    def paused(self) -> bool:
        return not self._running.is_set() and not self._cancelled.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def pause(self) -> None:
        with self._lock:
            if not self._cancelled.is_set():
                self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self, reason: str = "cancelled by the operator") -> None:
        with self._lock:
            self.reason = reason
            self._cancelled.set()
            self._running.set()

    def checkpoint(self) -> None:
        if self._cancelled.is_set():
            raise Cancelled(self.reason or "cancelled")
        if not self._running.is_set():
            self._running.wait()
            if self._cancelled.is_set():
                raise Cancelled(self.reason or "cancelled")


class Tracker:
    """Counts progress, smooths the rate, keeps 1 s bandwidth samples; a complete Reporter.

    The rate follows the data done (`advance`); the samples follow the bytes on the wire
    (`transferred`), which a bandwidth cap governs and compression shrinks; the ETA is the
    slower of the two. Listeners
    receive each log line; `snapshot()` and `samples()` are what a job store persists on its
    own schedule, so reporting never waits on storage.
    """

    def __init__(
        self,
        control: Control | None = None,
        clock: Callable[[], float] = time.time,
        on_log: Callable[[float, int, str], None] | None = None,
    ) -> None:
        self.control = control or Control()
        self._clock = clock
        self._on_log = on_log
        self._lock = threading.Lock()
        now = clock()
        self._started = now
        self._updated = now
        self._phase = "starting"
        self._bytes = 0
        self._bytes_total: int | None = None
        self._files = 0
        self._files_total: int | None = None
        self._history: deque[tuple[float, int]] = deque([(now, 0)])
        self._samples: deque[RateSample] = deque(maxlen=MAX_SAMPLES)
        self._sample_at = now
        self._wire = 0
        self._sample_wire = 0
        self._details: dict[str, str | int | float | bool | None] = {}

    # ---- Reporter ---------------------------------------------------------------------------

    def phase(self, name: str) -> None:
        with self._lock:
            self._phase = name
            self._updated = self._clock()
        self.log(f"phase: {name}", logging.DEBUG)

    def set_totals(self, bytes_total: int | None = None, files_total: int | None = None) -> None:
        with self._lock:
            if bytes_total is not None:
                self._bytes_total = bytes_total
            if files_total is not None:
                self._files_total = files_total

    def advance(self, nbytes: int = 0, files: int = 0) -> None:
        now = self._clock()
        with self._lock:
            self._bytes += nbytes
            self._files += files
            self._updated = now
            self._roll(now)
            self._remember(now)

    def transferred(self, nbytes: int) -> None:
        now = self._clock()
        with self._lock:
            self._roll(now)
            self._wire += nbytes

    def log(self, message: str, level: int = logging.INFO) -> None:
        log.log(level, message)
        if self._on_log is not None:
            self._on_log(self._clock(), level, message)

    def detail(self, key: str, value: str | int | float | bool | None) -> None:
        with self._lock:
            self._details[key] = value

    def checkpoint(self) -> None:
        self.control.checkpoint()

    # ---- readers ------------------------------------------------------------------------------

    def snapshot(self) -> ProgressSnapshot:
        now = self._clock()
        with self._lock:
            self._roll(now)
            self._remember(now)
            rate = self._rate(now)
            remaining = self._eta(rate)
            return ProgressSnapshot(
                phase=self._phase,
                bytes_done=self._bytes,
                bytes_total=self._bytes_total,
                files_done=self._files,
                files_total=self._files_total,
                rate=rate,
                eta=remaining,
                started=self._started,
                updated=self._updated,
            )

    def details(self) -> dict[str, str | int | float | bool | None]:
        """The facts recorded with detail(), as of now."""
        with self._lock:
            return dict(self._details)

    def samples(self, since: float = 0.0) -> list[RateSample]:
        """Completed 1 s rate samples newer than `since`."""
        with self._lock:
            self._roll(self._clock())
            return [s for s in self._samples if s.at > since]

    # ---- internals ----------------------------------------------------------------------------

    def _roll(self, now: float) -> None:
        # Close every whole second since the last sample, attributing the bytes of the
        # current one to it and zero to seconds with no activity (a paused job).
        while now - self._sample_at >= SAMPLE_INTERVAL:
            self._sample_at += SAMPLE_INTERVAL
            delta = self._wire - self._sample_wire
            self._samples.append(RateSample(at=self._sample_at, rate=delta / SAMPLE_INTERVAL))
            self._sample_wire = self._wire

    def _remember(self, now: float) -> None:
        self._history.append((now, self._bytes))
        # Keep at least two points, the older one at most RATE_WINDOW before the newest.
        while len(self._history) > _MIN_POINTS and now - self._history[1][0] >= RATE_WINDOW:
            self._history.popleft()

    def _eta(self, rate: float) -> float | None:
        """The slower of two estimates: reading at `rate`, and sending what is left (at the
        wire-to-data ratio so far) at the recent wire rate; a capped upload is the latter."""
        if self._bytes_total is None or rate <= 0:
            return None
        left = max(0, self._bytes_total - self._bytes)
        eta = left / rate
        recent = list(self._samples)[-int(RATE_WINDOW) :]
        wire_rate = sum(s.rate for s in recent) / len(recent) if recent else 0.0
        if self._bytes > 0 and self._wire > 0 and wire_rate > 0:
            eta = max(eta, left * (self._wire / self._bytes) / wire_rate)
        return eta

    def _rate(self, now: float) -> float:
        oldest_time, oldest_bytes = self._history[0]
        span = now - oldest_time
        if span <= 0:
            return 0.0
        return (self._bytes - oldest_bytes) / span


class NullReporter:
    """A Reporter that records nothing and never pauses (for callers without a job)."""

    def phase(self, name: str) -> None:
        return None

    def set_totals(self, bytes_total: int | None = None, files_total: int | None = None) -> None:
        return None

    def advance(self, nbytes: int = 0, files: int = 0) -> None:
        return None

    def transferred(self, nbytes: int) -> None:
        return None

    def log(self, message: str, level: int = logging.INFO) -> None:
        log.log(level, message)

    def detail(self, key: str, value: str | int | float | bool | None) -> None:
        return None

    def checkpoint(self) -> None:
        return None
