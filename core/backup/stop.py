"""The stop phase: pg_backup_stop, then wait until the backup's WAL is archived."""

from __future__ import annotations

import logging
import os
import time

from core.backup.state import BackupMode, BackupState
from core.errors import Cancelled, PgvaultError
from core.postgres.archiver import ArchiverFailure, archiver_failure
from core.postgres.connection import BackupSession, BackupStop, ServerFacts
from core.postgres.pgdata import wal_archive_busy
from core.postgres.walnames import segment_of_lsn

WARN_EVERY = 60.0  # seconds between "still waiting" warnings
STOPPING = "stopping the backup"
# Each poll is three stat() calls; a short cap keeps the backup from oversleeping the
# archiver's last file by up to a cap (this wait is most of a small incremental's time).
MAX_POLL_DELAY = 0.05
# pg_stat_archiver is read this long into the wait, then this often: PostgreSQL retries a
# failing archive_command three times a second apart, then waits a minute.
FIRST_ARCHIVER_LOOK = 3.0
ARCHIVER_LOOK_EVERY = 15.0


def stop_backup(state: BackupState, mode: BackupMode) -> BackupStop:
    """Leave backup mode; on a primary, switch WAL and mark a restore point as barman-cloud."""
    state.enter(STOPPING)
    # PostgreSQL's own wait for archiving polls once a second; pgvault reads the same
    # archive status files itself, every few milliseconds, when it can read them.
    status_dir = os.path.join(state.facts.data_directory, "pg_wal", "archive_status")
    watch = os.access(status_dir, os.R_OK | os.X_OK)
    stop = mode.session.stop(wait_for_archive=not watch)
    if watch:
        _wait_for_archiving(state, stop)
    if not state.facts.in_recovery:
        _after_stop(state, mode.session)
    return stop


def archiving_here(facts: ServerFacts) -> bool:
    """Whether this server's archiver archives its WAL (a standby's only with `always`)."""
    return facts.archive_mode == "always" or (facts.archive_mode == "on" and not facts.in_recovery)


def _wait_for_archiving(state: BackupState, stop: BackupStop) -> None:
    """Wait until the backup's last segment is archived (earlier ones are, by the archiver's
    order); then wait_for_wal looks for every needed segment in the destination."""
    # pg_backup_stop(true) also waits for the .backup history file. No restore reads it, and
    # when the backup began in its last segment (a short one) the archiver takes the file
    # after that segment, its name sorting after the segment's: waiting for it cost a whole
    # archive_command run (~0.05 s of a 0.5 s incremental, bench/README.md).
    facts = state.facts
    if not archiving_here(facts):
        return
    last = segment_of_lsn(stop.timeline, stop.lsn - 1, facts.wal_segment_size)
    pgdata = facts.data_directory
    started = time.monotonic()
    warned = 0.0
    look_at = FIRST_ARCHIVER_LOOK
    failure: ArchiverFailure | None = None
    delay = 0.005
    while wal_archive_busy(pgdata, last):
        state.checkpoint()
        waited = time.monotonic() - started
        if waited >= look_at:
            look_at = waited + ARCHIVER_LOOK_EVERY
            seen, failure = failure, archiving_failure(state)
            if failure is not None and (seen is None or seen.wal != failure.wal):
                warned = waited
                # Said before the phase changes: whoever sees the phase (the jobs view, `jobs
                # list`, a test) has had the line.
                state.log(
                    f"waiting for {last} to be archived: {failure.describe()}", logging.WARNING
                )
                state.enter(f"waiting for WAL archiving: archive_command fails on {failure.wal}")
            elif failure is None and seen is not None:
                state.enter(STOPPING)
        if waited - warned >= WARN_EVERY:
            warned = waited
            cause = failure.describe() if failure else "check archive_command and the server log"
            state.log(
                f"still waiting for {last} to be archived ({waited:.0f} s): {cause}",
                logging.WARNING,
            )
        time.sleep(delay)
        delay = min(MAX_POLL_DELAY, delay * 2)


def archiving_failure(state: BackupState) -> ArchiverFailure | None:
    """The archiver's current failure; a statistics view that cannot be read tells nothing."""
    try:
        return archiver_failure(state.session)
    except PgvaultError as exc:
        if isinstance(exc, Cancelled):
            raise
        state.log(f"cannot read pg_stat_archiver: {exc}", logging.DEBUG)
        return None


def _after_stop(state: BackupState, backup: BackupSession) -> None:
    """As barman-cloud: switch WAL and create the restore point barman_<ID> (primary only)."""
    try:
        backup.switch_wal()
        backup.restore_point(f"barman_{state.backup_id}")
    except PgvaultError as exc:
        if isinstance(exc, Cancelled):
            raise
        state.log(str(exc), logging.WARNING)
