"""The job reporter: core.progress's Tracker, persisted to the job store by a background thread.

The operation calls the Reporter methods (in memory, cheap) and `checkpoint()`. A flusher
thread, with its own store connection, writes the snapshot, the heartbeat, new 1 s rate
samples and buffered log lines in one transaction every FLUSH_INTERVAL, and polls the
job's state every POLL_INTERVAL to apply the operator's requests to the Control: a
pause blocks every checkpoint (and every 64 KiB upload slice through `store.gate`) within
POLL_INTERVAL plus one slice; a cancel makes the next checkpoint raise Cancelled.
A failing store never fails the operation: the flusher logs and tries again, a store that
cannot be opened leaves the job unrecorded, and a final state that cannot be written is
logged while the operation's own outcome stands.
A detail (a backup ID) is the exception: `detail()` wakes the flusher and returns once the
store holds it (within DETAIL_WAIT), so a process killed right after choosing its backup ID
leaves a job that names it, for `jobs resume` and the operator.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import deque

from core.errors import PgvaultError
from core.jobs.model import IllegalTransition, Job, JobState
from core.jobs.results import JobDetails, JobResult, ResultRecord
from core.jobs.store import JobStore
from core.progress import Control, ProgressSnapshot, RateSample, Tracker

log = logging.getLogger("pgvault.jobs")

FLUSH_INTERVAL = 0.5  # seconds between progress writes
POLL_INTERVAL = 0.2  # seconds between reads of the requested state
MAX_PENDING_LINES = 10_000  # log lines buffered between flushes (oldest dropped beyond)
STORED_LEVEL = logging.INFO  # log lines below this stay out of the job's log
#: seconds detail() waits for its fact to be in the store (a slow store must not stall work)
DETAIL_WAIT = 5.0


class JobReporter:
    """A Reporter for one job in the store; start() before the operation, finish() after."""

    def __init__(
        self,
        store_path: str | os.PathLike[str],
        job_id: int,
        *,
        control: Control | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.job_id = job_id
        self.control = control or Control()
        self.tracker = Tracker(self.control, on_log=self._on_log)
        self._store_path = store_path
        self._flush_interval = flush_interval
        self._poll_interval = poll_interval
        self._lines: deque[tuple[float, int, str]] = deque(maxlen=MAX_PENDING_LINES)
        self._lines_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # flush now: a detail waits for it
        # detail() calls made (_asked) and those whose facts a flush stored (_stored)
        self._written = threading.Condition()
        self._asked = 0
        self._stored = 0
        self._thread: threading.Thread | None = None
        self._store: JobStore | None = None
        self._last_sample = 0.0
        self._state = JobState.RUNNING
        self._store_failing = False
        self._details_written = JobDetails()
        #: CPU seconds the flusher thread used (what the job engine costs beside the work)
        self.flusher_cpu = 0.0

    # ---- Reporter --------------------------------------------------------------------------------

    def phase(self, name: str) -> None:
        self.tracker.phase(name)
        self._on_log(time.time(), logging.INFO, f"phase: {name}")

    def set_totals(self, bytes_total: int | None = None, files_total: int | None = None) -> None:
        self.tracker.set_totals(bytes_total, files_total)

    def advance(self, nbytes: int = 0, files: int = 0) -> None:
        self.tracker.advance(nbytes, files)

    def transferred(self, nbytes: int) -> None:
        self.tracker.transferred(nbytes)

    def log(self, message: str, level: int = logging.INFO) -> None:
        self.tracker.log(message, level)

    def detail(self, key: str, value: str | int | float | bool | None) -> None:
        """Record the fact and return once the store holds it (at most DETAIL_WAIT later)."""
        self.tracker.detail(key, value)
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            return  # not flushing: finish() writes the details
        with self._written:
            self._asked += 1
            wanted = self._asked
            self._wake.set()
            self._written.wait_for(
                lambda: self._stored >= wanted or self._store_failing or self._stop.is_set(),
                timeout=DETAIL_WAIT,
            )

    def checkpoint(self) -> None:
        self.control.checkpoint()

    def record(self, message: str, level: int = logging.INFO) -> None:
        """A line for the job's log only (the command prints its own outcome)."""
        self._on_log(time.time(), level, message)

    # ---- what the runner and a foreground progress bar use ---------------------------------------

    def snapshot(self) -> ProgressSnapshot:
        return self.tracker.snapshot()

    def details(self) -> JobDetails:
        """The facts the operation recorded so far (Reporter.detail)."""
        return JobDetails.from_json(self.tracker.details())

    @property
    def state(self) -> JobState:
        """The job's state as of the last flush."""
        return self._state

    def start(self, initial: JobState = JobState.RUNNING) -> None:
        """Open the reporter's store connection and start flushing."""
        self._state = initial
        if initial is JobState.PAUSED:
            self.control.pause()
        try:
            self._store = JobStore(self._store_path)
        except (OSError, sqlite3.Error, PgvaultError) as exc:  # the work goes on unrecorded
            log.warning("job %s runs without progress in the job store: %s", self.job_id, exc)
            self._store_failing = True
            return
        self._thread = threading.Thread(
            target=self._run, args=(self._store,), name=f"pgvault-job-{self.job_id}", daemon=True
        )
        self._thread.start()

    def finish(
        self,
        state: JobState,
        error: str | None = None,
        result: JobResult | None = None,
    ) -> Job:
        """Stop flushing, write the last progress, the final state, the details and result."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        try:
            job = self._record_end(state, error, result)
        except (OSError, sqlite3.Error, PgvaultError) as exc:
            # The work is done (or failed on its own): a store that cannot be written must
            # not change what the operation reports. The job stays for the reaper to end.
            log.warning("the end of job %s is not recorded in the job store: %s", self.job_id, exc)
            job = Job(
                id=self.job_id,
                kind="",
                state=state,
                error=error,
                details=self.details(),
                result=result,
            )
        self._state = job.state
        return job

    def _record_end(self, state: JobState, error: str | None, result: JobResult | None) -> Job:
        store = self._store or JobStore(self._store_path)
        try:
            self._flush(store)
            record = ResultRecord(self.details(), result)
            try:
                return store.transition(self.job_id, state, error=error, result=record)
            except IllegalTransition:
                # Someone else ended it first (a reaper that wrongly judged us dead, or an
                # operator's cancel racing the end): keep their verdict.
                return store.get(self.job_id)
        finally:
            store.close()
            self._store = None

    # ---- internals -------------------------------------------------------------------------------

    def _on_log(self, at: float, level: int, message: str) -> None:
        if level >= STORED_LEVEL:
            with self._lines_lock:
                self._lines.append((at, level, message))

    def _run(self, store: JobStore) -> None:
        next_flush = 0.0
        started = time.thread_time()
        try:
            self._loop(store, next_flush)
        finally:
            self.flusher_cpu = time.thread_time() - started

    def _loop(self, store: JobStore, next_flush: float) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            self._wake.clear()  # before reading _asked: a later detail() wakes the next wait
            with self._written:
                asked = self._asked  # read before the flush reads the details they recorded
                waited_for = asked > self._stored
            try:
                if waited_for or now >= next_flush or self._requested(store) is not self._state:
                    self._flush(store)
                    next_flush = now + self._flush_interval
                    self._acknowledge(asked)
                if self._store_failing:
                    log.info("job store %s writable again", store.path)
                    self._store_failing = False
            except Exception as exc:  # the store must never fail the operation
                if not self._store_failing:
                    log.warning("cannot update job %s in the job store: %s", self.job_id, exc)
                    self._store_failing = True
                self._acknowledge(self._stored)  # a waiting detail() goes on without it
            self._wake.wait(self._poll_interval)

    def _acknowledge(self, stored: int) -> None:
        """The facts of the first `stored` detail() calls are in the store: wake their callers."""
        with self._written:
            self._stored = max(self._stored, stored)
            self._written.notify_all()

    def _requested(self, store: JobStore) -> JobState:
        rows = store._read("SELECT state FROM jobs WHERE id = ?", (self.job_id,))
        return JobState(rows[0][0]) if rows else self._state

    def _flush(self, store: JobStore) -> None:
        snapshot = self.tracker.snapshot()
        samples: list[RateSample] = self.tracker.samples(since=self._last_sample)
        details = self.details()
        changed = details if details != self._details_written else None
        with self._lines_lock:
            lines = list(self._lines)
            self._lines.clear()
        try:
            self._state = store.flush(
                self.job_id, snapshot, samples, lines, self._decide, details=changed
            )
        except BaseException:
            with self._lines_lock:
                self._lines.extendleft(reversed(lines))
            raise
        if samples:
            self._last_sample = samples[-1].at
        self._details_written = details

    def _decide(self, requested: JobState) -> JobState | None:
        """Apply the state the operator left to the Control; return the acknowledgement."""
        if requested is JobState.PAUSE_REQUESTED:
            self.control.pause()
            self.tracker.log("paused by the operator")
            return JobState.PAUSED
        if requested is JobState.PAUSED:
            self.control.pause()
        elif requested in (JobState.RUNNING, JobState.PENDING):
            if self.control.paused:
                self.control.resume()
                self.tracker.log("resumed by the operator")
        elif requested is JobState.CANCEL_REQUESTED:
            if not self.control.cancelled:
                self.control.cancel("cancelled by the operator")
                self.tracker.log("cancel requested by the operator")
        elif requested.final and not self.control.cancelled:
            self.control.cancel(f"the job was marked {requested.value} by another process")
        return None
