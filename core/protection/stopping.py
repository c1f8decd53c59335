"""Stopping the agent or adhoc-backup (SIGTERM, SIGINT, SIGHUP): its running backup is
cancelled cleanly.

The signal cancels the backup job the agent runs, through the job's control, the path
`jobs cancel` takes (uploads aborted, the backup marked FAILED in the catalog), so the
run is recorded failed with the reason and marked interrupted, and the claim is no longer
held; the pass then ends without starting anything else, and the command exits. The next
pass runs an interrupted slot again when it is still the newest due one (runs.take_over_
abandoned), as it does a slot whose holder was killed; an interrupted ad hoc run is not
run again (the operator asked for it, and is told). A copy to the secondary destination
running when the signal comes is cancelled the same way: its backup's run stays SUCCEEDED,
recorded `copy_interrupted`, and the next pass makes the copy (runs.redo_interrupted_copies);
so it does when a kill left no such record (copy_owner.copy_killed).

One process runs one agent: the request is process-wide, as a signal is.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from core.jobs import Job, JobReporter
from core.jobs.stop_signals import on_stop_signals


class _Stop:
    """The stop request and the jobs it cancels."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._running: list[JobReporter] = []
        self.wake = threading.Event()

    @property
    def reason(self) -> str | None:
        with self._lock:
            return self._reason

    def request(self, reason: str) -> None:
        with self._lock:
            if self._reason is None:
                self._reason = reason
            running = list(self._running)
        self.wake.set()
        for reporter in running:
            _cancel(reporter, reason)

    def watch(self, job: Job, reporter: JobReporter) -> None:
        """run_foreground's on_start: a job the stop cancels (at once if it came already)."""
        with self._lock:
            self._running.append(reporter)
            reason = self._reason
        if reason is not None:
            _cancel(reporter, reason)

    def forget(self) -> None:
        with self._lock:
            self._running.clear()

    def reset(self) -> None:
        with self._lock:
            self._reason = None
            self._running.clear()
        self.wake.clear()


def _cancel(reporter: JobReporter, reason: str) -> None:
    # Control takes a lock the interrupted code may hold: never from the handler itself.
    threading.Thread(target=reporter.control.cancel, args=(reason,), daemon=True).start()


STOP = _Stop()


def stop_reason() -> str | None:
    """Why the agent is stopping (`the agent was stopped by SIGTERM`), or None."""
    return STOP.reason


@contextmanager
def stop_on_signals(what: str = "the agent") -> Iterator[None]:
    """For the agent and adhoc-backup commands: SIGTERM, SIGINT and SIGHUP request the stop,
    `what` naming the command in the reason."""
    if threading.current_thread() is threading.main_thread():
        STOP.reset()  # elsewhere no signal is taken: the request is left alone
    with on_stop_signals(lambda sig: STOP.request(f"{what} was stopped by {sig.name}")):
        yield


__all__ = ["STOP", "stop_on_signals", "stop_reason"]
