"""The job feed: one background thread that reads the job store a few times a second.

It asks the store what changed since the last revision (one indexed query when nothing
did), marks dead jobs failed every couple of seconds as `jobs` commands do, reads the
aggregate bandwidth once a second, and posts what it found to the app. The UI thread never
touches SQLite for the jobs view.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from textual.message import Message

from core.errors import PgvaultError
from core.jobs import JobStore, reap_dead
from core.secrets import redact
from tui.config import AGGREGATE_WINDOW, ConsoleConfig
from tui.messages import BandwidthSampled, FeedStatus, JobsChanged

REAP_EVERY = 2.0
BANDWIDTH_EVERY = 1.0
RETRY_EVERY = 2.0


class JobFeed:
    """Runs in a thread worker (`run`); `refresh()` asks for a full re-read at once."""

    def __init__(self, post: Callable[[Message], object], config: ConsoleConfig) -> None:
        self.post = post  # the app's post_message (thread-safe)
        self.config = config
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._full = True

    def refresh(self) -> None:
        self._full = True
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        store: JobStore | None = None
        rev = 0
        last_reap = last_bandwidth = 0.0
        error: str | None = None
        try:
            while not self._stop.is_set():
                try:
                    if store is None:
                        store = JobStore.open(self.config.state_dir)
                    now = time.monotonic()
                    if self.config.reap and now - last_reap >= REAP_EVERY:
                        last_reap = now
                        reap_dead(store)
                    full, self._full = self._full, False
                    changes = store.changed_since(0 if full else rev)
                    if full or changes.jobs:
                        self.post(JobsChanged(changes.jobs, full, changes.rev))
                    rev = changes.rev
                    if full or now - last_bandwidth >= BANDWIDTH_EVERY:
                        last_bandwidth = now
                        since = self.config.clock() - AGGREGATE_WINDOW
                        self.post(BandwidthSampled(store.aggregate_samples(since)))
                    if error is not None:
                        error = None
                        self.post(FeedStatus(None))
                    wait = self.config.poll_interval
                except PgvaultError as exc:
                    wait = self._failed(str(exc), error)
                    error = str(exc)
                except Exception as exc:  # sqlite3 and OS errors: say so, keep trying
                    message = redact(f"job store: {type(exc).__name__}: {exc}")
                    wait = self._failed(message, error)
                    error = message
                    if store is not None:
                        store.close()
                        store = None
                self._wake.wait(wait)
                self._wake.clear()
        finally:
            if store is not None:
                store.close()

    def _failed(self, message: str, previous: str | None) -> float:
        if message != previous:
            self.post(FeedStatus(message))
        self._full = True
        return RETRY_EVERY
