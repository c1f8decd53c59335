"""The failure path: backup.info FAILED with the reason, no unfinished upload, PostgreSQL out
of backup mode, whatever phase the backup was in."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import NoReturn

from core.backup.state import BackupState
from core.catalog.backup_info import FAILED, serialize
from core.errors import Cancelled, OperationFailed, own_cause

log = logging.getLogger("pgvault.backup")


def fail(state: BackupState, exc: BaseException) -> NoReturn:
    """Clean up after `exc`, then raise Cancelled or OperationFailed naming the phase."""
    state.job.store.gate = None  # cleanup must not be paused or cancelled
    reason = f"failure {state.phase} ({_first_line(exc)})"
    for writer in state.writers:
        with contextlib.suppress(Exception):
            writer.abort()
    if state.backup is not None:
        state.backup.close()
    state.session.close()
    _cleanup_after(state, reason)
    # The job's words (cancelled or failed); backup.info says FAILED either way, as barman's.
    cancelled = isinstance(exc, Cancelled)
    ended = f"cancelled during {state.phase} ({_first_line(exc)})" if cancelled else reason
    log.error("backup %s %s", state.backup_id, ended if cancelled else f"failed: {reason}")
    if not isinstance(exc, Exception):
        raise exc  # KeyboardInterrupt, SystemExit: after cleanup
    server = state.job.request.server
    if cancelled:
        raise Cancelled(f"backup {state.backup_id} of server {server} {ended}") from exc
    raise OperationFailed(f"backup {state.backup_id} of server {server} failed: {reason}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(own_cause(exc) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cleanup_after(state: BackupState, reason: str) -> None:
    """Each step is tried even when an earlier one fails; what could not be done is logged."""
    store, layout, options = state.job.store, state.job.layout, state.job.options
    failed = state.info.with_changes(status=FAILED, error=reason)
    state.manifest = replace(state.manifest, state="failed", error=reason, lease=None)
    steps: list[tuple[str, Callable[[], object]]] = [
        (
            "mark the backup FAILED",
            lambda: store.put_bytes(
                layout.backup_info(state.backup_id), serialize(failed), options
            ),
        ),
        ("update pgvault.json", state.put_manifest),
        (
            "abort unfinished uploads",
            lambda: store.abort_pending_uploads(layout.backup_prefix(state.backup_id)),
        ),
    ]
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # keep cleaning up; report what could not be done
            log.error("could not %s of backup %s: %s", what, state.backup_id, exc)
