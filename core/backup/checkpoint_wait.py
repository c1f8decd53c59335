"""The start checkpoint, said out loud: what a backup waits for before it copies anything.

Without --immediate-checkpoint, pg_backup_start waits for a spread checkpoint, which
PostgreSQL paces over checkpoint_completion_target x checkpoint_timeout (4.5 minutes by
default). While it runs, a second session reads the checkpointer's buffers written
(pg_stat_bgwriter, pg_stat_checkpointer from 17, reported as the checkpoint goes) so the
phase shows the wait moving; watching never fails the backup.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

from core.backup.state import BackupState
from core.errors import PgvaultError
from core.postgres import versions
from core.postgres.connection import Session

log = logging.getLogger("pgvault.backup")

WAITING = "waiting for PostgreSQL's checkpoint"
HINT = "--immediate-checkpoint makes it fast"
POLL = 2.0  # seconds between readings of the checkpointer's statistics
PHASE_EVERY = 10.0  # seconds between phase updates (each is a line in the job's log)
LOG_EVERY = 30.0  # seconds between progress lines in the log (-v)


def spread_seconds(state: BackupState) -> float | None:
    """checkpoint_completion_target x checkpoint_timeout, as the server has them."""
    try:
        value = state.session.one(
            "SELECT (SELECT setting::float FROM pg_settings"
            "  WHERE name = 'checkpoint_completion_target')"
            " * (SELECT setting::float FROM pg_settings WHERE name = 'checkpoint_timeout')",
            what="reading the checkpoint settings",
        )
    except PgvaultError as exc:
        log.debug("checkpoint settings unknown: %s", exc)
        return None
    return float(value) if value is not None else None


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}m{whole % 60:02d}s"


class CheckpointWatch:
    """Around pg_backup_start: names the wait, then shows its progress until it ends."""

    def __init__(self, state: BackupState) -> None:
        self.state = state
        self.spread = spread_seconds(state)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pgvault-checkpoint", daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> CheckpointWatch:
        about = f", paced over about {_clock(self.spread)}" if self.spread else ""
        self.state.phase = WAITING  # what a failure names; the reporter shows the detail
        # The hint before the figures: a narrow progress line cuts the end of the phase.
        pace = f" (paced over about {_clock(self.spread)})" if self.spread else ""
        self.state.job.reporter.phase(f"{WAITING}; {HINT}{pace}")
        self.state.log(
            f"{WAITING} to finish before copying{about} (checkpoint_completion_target x "
            f"checkpoint_timeout); {HINT}"
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        if exc is None:
            self.state.log(f"PostgreSQL's checkpoint done in {_clock(self._elapsed())}")

    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    def _run(self) -> None:
        try:
            session = Session(self.state.job.request.connection, "pgvault backup checkpoint")
        except PgvaultError as exc:  # no progress to show, the backup goes on
            log.debug("checkpoint progress not watched: %s", exc)
            return
        try:
            self._watch(session)
        except (PgvaultError, TypeError, ValueError) as exc:  # a statistic missing or odd
            log.debug("checkpoint progress no longer watched: %s", exc)
        finally:
            session.close()

    def _watch(self, session: Session) -> None:
        query = (
            "SELECT buffers_written FROM pg_stat_checkpointer"
            if self.state.facts.version_num >= versions.STAT_CHECKPOINTER
            else "SELECT buffers_checkpoint FROM pg_stat_bgwriter"
        )
        first = int(session.one(query, what="reading checkpoint progress"))
        logged = shown = -LOG_EVERY  # the first reading is shown and logged
        while not self._stop.wait(POLL):
            written = int(session.one(query, what="reading checkpoint progress")) - first
            elapsed = self._elapsed()
            of = f" of about {_clock(self.spread)}" if self.spread else ""
            progress = f"{_clock(elapsed)}{of}, {written} buffers written"
            if self._stop.is_set():
                return
            if elapsed - shown >= PHASE_EVERY:
                shown = elapsed
                self.state.job.reporter.phase(f"{WAITING}; {HINT} ({progress})")
            if elapsed - logged >= LOG_EVERY:
                logged = elapsed
                self.state.log(f"{WAITING}: {progress}")
