"""The backup's own WAL in its own destination: a backup becomes DONE only once the WAL that
makes it consistent (begin_wal to end_wal) is archived there under the same server name.

PostgreSQL reports WAL archived wherever archive_command put it. A backup under a server
name that archive_command does not use (pg2 while WAL goes to pg1) would otherwise be
listed DONE and fail to restore. As pgBackRest's archive-check, the backup waits for its
WAL to appear, up to --wal-timeout, and fails naming the likely cause; --no-wal-check is
for an operator who keeps the WAL elsewhere.
"""

from __future__ import annotations

import logging
import time

from core.backup.state import BackupMode, BackupState
from core.backup.stop import WARN_EVERY
from core.errors import OperationFailed
from core.postgres.connection import BackupStop, ServerFacts
from core.postgres.walnames import last_segment_needed, segment_of_lsn, segment_range

MAX_POLL_DELAY = 1.0  # seconds between listings of the WAL directory, at most


def require_archiving(facts: ServerFacts, server: str, destination: str) -> None:
    """Refuse, before anything is written, a backup whose WAL can never reach the destination."""
    if facts.archive_mode != "off" or facts.in_recovery:
        return  # a standby's WAL is archived by its primary
    raise OperationFailed(
        f"WAL archiving is off on this server (archive_mode = off): a backup is restorable "
        f"only with its WAL, and none will reach {destination} under {server}. Set "
        f"archive_mode = on and archive_command = 'pgvault --batch wal-archive {destination} "
        f"{server} %p' (then restart PostgreSQL), or pass --no-wal-check if you keep the WAL "
        "yourself"
    )


def needed_segments(facts: ServerFacts, mode: BackupMode, stop: BackupStop) -> list[str]:
    """The segments from the backup's start to its end, the first and last across a switch."""
    size = facts.wal_segment_size
    first = segment_of_lsn(mode.start.timeline, mode.start.lsn, size)
    last = last_segment_needed(stop.timeline, stop.lsn, size)
    if mode.start.timeline != stop.timeline:
        return [first, last]
    return segment_range(first, last, size)


def wait_for_wal(state: BackupState, mode: BackupMode, stop: BackupStop) -> None:
    """Wait until every needed segment is archived in this destination under this server."""
    request = state.job.request
    if not request.wal_check:
        return
    missing = needed_segments(state.facts, mode, stop)
    state.enter(f"waiting for WAL {missing[-1]} in the destination")
    started = time.monotonic()
    warned = 0.0
    delay = 0.05
    while True:
        missing = _still_missing(state, missing)
        if not missing:
            return
        waited = time.monotonic() - started
        if waited >= request.wal_timeout:
            raise OperationFailed(_never_arrived(state, missing, waited))
        if waited - warned >= WARN_EVERY:
            warned = waited
            state.log(
                f"still waiting for {missing[0]} to be archived in the destination "
                f"({waited:.0f} s): check archive_command and the server log",
                logging.WARNING,
            )
        state.checkpoint()
        time.sleep(delay)
        delay = min(MAX_POLL_DELAY, delay * 2)


def _still_missing(state: BackupState, names: list[str]) -> list[str]:
    layout, store = state.job.layout, state.job.store
    stored: set[str] = set()
    for prefix in sorted({layout.wal_dir(name) for name in names}):
        for info in store.list_objects(prefix):
            parsed = layout.parse_wal(info.key)
            if parsed is not None:
                stored.add(parsed[0])
    return [name for name in names if name not in stored]


def _never_arrived(state: BackupState, missing: list[str], waited: float) -> str:
    request = state.job.request
    where = f"{request.location.display()} under server {request.server}"
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    cause = (
        "the primary archives a standby's WAL: its archive_command must use this destination "
        "and server name, and it archives the last segment only once it switches WAL"
        if state.facts.in_recovery
        else "archive_command archives WAL elsewhere (another destination or server name) "
        "or not at all"
    )
    return (
        f"WAL {missing[0]}{more}, which the backup needs to be consistent, did not reach "
        f"{where} within {waited:.0f} s: {cause}; check archive_command with "
        f"'pgvault --batch check-wal-archive', or pass --no-wal-check if you keep the WAL "
        "elsewhere"
    )
