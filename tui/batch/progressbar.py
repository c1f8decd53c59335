"""Progress lines for the --batch face: a redrawn bar on a terminal, plain lines otherwise.

Written by hand (no rich, no textual): the batch path imports neither.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TextIO

from core.jobs import Job, JobState
from core.progress import ProgressSnapshot
from core.units import format_size
from tui.fmt import duration as format_duration
from tui.fmt import per_second as format_rate
from tui.fmt import rate_words

BAR_WIDTH = 24
NARROWEST_BAR = 10  # below this the bar goes and the line is cut
WIDEST_BAR = 30


@dataclass(frozen=True)
class Progress:
    """The fields a progress line shows, from a Job (store) or a ProgressSnapshot (in process)."""

    phase: str
    bytes_done: int
    bytes_total: int | None
    files_done: int
    files_total: int | None
    rate: float
    eta: float | None
    state: JobState | None = None  # None: an operation run without a job
    kind: str = ""  # the job's kind: names what the rate counts (read, written, checked)

    @classmethod
    def of_job(cls, job: Job) -> Progress:
        return cls(
            job.phase,
            job.bytes_done,
            job.bytes_total,
            job.files_done,
            job.files_total,
            job.rate,
            job.eta,
            job.state,
            job.kind,
        )

    @classmethod
    def of_snapshot(
        cls, snap: ProgressSnapshot, state: JobState | None = None, kind: str = ""
    ) -> Progress:
        return cls(
            snap.phase,
            snap.bytes_done,
            snap.bytes_total,
            snap.files_done,
            snap.files_total,
            snap.rate,
            snap.eta,
            state,
            kind,
        )

    @property
    def fraction(self) -> float | None:
        if not self.bytes_total:
            return None
        return min(1.0, self.bytes_done / self.bytes_total)


def format_amount(p: Progress) -> str:
    done = format_size(p.bytes_done)
    amount = f"{done}/{format_size(p.bytes_total)}" if p.bytes_total else done
    if p.files_total:
        amount += f" {p.files_done}/{p.files_total} files"
    elif p.files_done:
        amount += f" {p.files_done} files"
    return amount


def data_rate(p: Progress) -> str:
    """'read 30.0 MiB/s': the data done per second, named as the console names it (not the
    bytes on the wire, which compression and a bandwidth cap make differ)."""
    return f"{rate_words(p.kind)[0]} {format_rate(p.rate)}"


def bar(fraction: float | None, width: int = BAR_WIDTH) -> str:
    if fraction is None:
        return "[" + "-" * width + "]"
    filled = int(fraction * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def percent(fraction: float | None) -> str:
    return "  ?  " if fraction is None else f"{fraction * 100:5.1f}%"


def bar_line(p: Progress, prefix: str, width: int) -> str:
    """One terminal line: prefix, bar, percent, amount, rate, ETA, phase; fitted to width.

    The bar narrows first, then the file counts go, then the rate's name, then the line is cut.
    """
    state = f" {p.state.value}" if p.state not in (None, JobState.RUNNING) else ""
    tail = [percent(p.fraction), "", "", f"ETA {format_duration(p.eta)}"]
    no_files = format_amount(replace(p, files_total=None, files_done=0))
    for amount, rate in (
        (format_amount(p), data_rate(p)),
        (no_files, data_rate(p)),
        (no_files, format_rate(p.rate)),
    ):
        tail[1], tail[2] = amount, rate
        rest = " ".join([f"{prefix}{state}", *tail, p.phase])
        room = width - 1 - len(rest) - 3  # brackets and a space
        if room >= NARROWEST_BAR:
            wide = bar(p.fraction, min(room, WIDEST_BAR))
            return " ".join([f"{prefix}{state}", wide, *tail, p.phase])
    line = " ".join([f"{prefix}{state}", bar(p.fraction, NARROWEST_BAR), *tail, p.phase])
    return line[: max(NARROWEST_BAR, width - 1)]


def plain_line(p: Progress, prefix: str) -> str:
    """One log-friendly line (no bar, no carriage return)."""
    fraction = "" if p.fraction is None else f" {p.fraction * 100:.1f}%"
    state = f" {p.state.value}" if p.state is not None else ""
    return (
        f"{prefix}{state}{fraction} {format_amount(p)} {data_rate(p)} "
        f"eta {format_duration(p.eta)} phase {p.phase or '-'}"
    )


def terminal_width(stream: TextIO) -> int:
    """The width of the terminal the stream writes to (80 when unknown)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        columns = 0
    return columns or shutil.get_terminal_size((80, 24)).columns or 80


class LiveBar:
    """Redraws one line on a terminal stream from `read()` every `interval` seconds."""

    def __init__(
        self,
        stream: TextIO,
        read: Callable[[], Progress],
        prefix: str,
        interval: float = 0.5,
    ) -> None:
        self._stream = stream
        self._read = read
        self._prefix = prefix
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._on_line = False  # the bar is the cursor's line now: other text must end it
        self._handlers: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []

    def draw(self) -> None:
        line = bar_line(self._read(), self._prefix, terminal_width(self._stream))
        with self._lock:
            self._stream.write("\r\x1b[K" + line)
            self._stream.flush()
            self._on_line = True

    def flush(self) -> None:
        with self._lock:
            self._stream.flush()

    def write_line(self, text: str) -> None:
        """Write `text` (a log record) on a line of its own: the bar's line is cleared first
        and the bar comes back below it at the next redraw."""
        with self._lock:
            if self._on_line:
                self._stream.write("\r\x1b[K")
                self._on_line = False
            self._stream.write(text)

    def start(self) -> None:
        # Log records (a warning, the error of a cancelled job) must not land after the bar.
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is self._stream:
                self._handlers.append((handler, handler.stream))
                handler.setStream(_LinesBeforeBar(self))
        self._thread = threading.Thread(target=self._loop, name="pgvault-bar", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.draw()
            except (OSError, ValueError):  # the terminal went away: stop drawing
                return
            self._stop.wait(self._interval)

    def stop(self, clear: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for handler, stream in self._handlers:
            handler.setStream(stream)
        self._handlers.clear()
        if self._on_line:  # end the bar's line (a log record may have ended it already)
            self._on_line = False
            try:
                self._stream.write("\r\x1b[K" if clear else "\n")
                self._stream.flush()
            except (OSError, ValueError):
                pass


class _LinesBeforeBar:
    """The stream a log handler writes to while a bar is shown: through LiveBar.write_line."""

    def __init__(self, live: LiveBar) -> None:
        self._live = live

    def write(self, text: str) -> int:
        self._live.write_line(text)
        return len(text)

    def flush(self) -> None:
        self._live.flush()


def elapsed(job: Job, now: float | None = None) -> float | None:
    if job.started is None:
        return None
    return (job.finished or now or time.time()) - job.started
