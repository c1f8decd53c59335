"""What a restore creates, recorded so that a failure or a cancellation removes it all.

Directories the restore creates are removed whole; existing empty directories it wrote
into are emptied again; in an existing restore_command directory only the files it wrote
go. Nothing half-restored is ever left that PostgreSQL would start on. A restore that finds
another one writing into its directory (core.restore.rerun) has recorded nothing: it removes
nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil

from core.errors import OperationFailed, permission_denied
from core.restore.rerun import RestoreRunning, claim, drop_unnamed_marker
from core.restore.state import RestoreRun

log = logging.getLogger("pgvault.restore")


def _make(path: str) -> str | None:
    """Create a directory and its missing parents; the topmost one created (None when
    another process made it meanwhile: it is adopted)."""
    missing = []
    probe = path
    while not os.path.exists(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    try:
        os.makedirs(path, mode=0o700)
    except FileExistsError:
        if os.path.isdir(path):
            return None
        raise OperationFailed(f"cannot create {path}: it exists and is not a directory") from None
    except PermissionError as exc:
        raise permission_denied(exc) from None
    except OSError as exc:
        raise OperationFailed(f"cannot create {path}: {exc.strerror}") from None
    return missing[-1] if missing else path


def _record(run: RestoreRun, path: str, made: str | None) -> None:
    """What a failure removes: a directory made whole, an existing one emptied (an existing
    one under --delta is never emptied: a failed delta restore is run again)."""
    if made is not None:
        run.created.append(made)
    elif not run.request.delta:
        run.emptied.append(path)


def make_dir(run: RestoreRun, path: str, create: bool) -> None:
    """Create a directory (and its missing parents), or adopt an existing empty one."""
    _record(run, path, _make(path) if create else None)


def prepare_directories(run: RestoreRun) -> None:
    """The phase: the recovery directory created or adopted and its marker claimed, then
    each tablespace location. Nothing is recorded for removal before the claim: a restore
    that finds another one writing there leaves it alone, even a directory it made itself
    (the other adopted it)."""
    request, info = run.request, run.plan.info
    made = _make(run.pgdata) if run.plan.create_root else None
    backup = {"backup_id": info.backup_id, "systemid": str(info.systemid or "")}
    plain_delta = request.delta and not request.continued  # named once its checks pass
    try:
        run.marker = claim(
            run.pgdata, {} if plain_delta else backup, request.sync, not request.delta
        )
    except RestoreRunning:
        raise
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise
    _record(run, run.pgdata, made)
    for root, create in run.plan.creates.items():
        make_dir(run, root, create)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def clean_up(run: RestoreRun, exc: BaseException) -> None:
    """Remove everything this restore wrote; keep directories that existed (emptied)."""
    run.abort.set()
    run.syncer.stop()
    drop_unnamed_marker(run.marker)
    for path in run.wal_files:
        _remove(path)
    for path in reversed(run.created):
        shutil.rmtree(path, ignore_errors=True)
    for path in run.emptied:
        if path == run.paths.wal_dir:
            continue
        for entry in os.listdir(path) if os.path.isdir(path) else []:
            _remove(os.path.join(path, entry))
    if run.created or run.emptied:
        log.info("restore failed (%s): removed what it had written", type(exc).__name__)
    elif (
        run.request.delta
        and not isinstance(exc, RestoreRunning)
        and not os.path.lexists(os.path.join(run.pgdata, "global", "pg_control"))
    ):
        # Only once prepare_delta set it aside: a restore refused before (a WAL hole, a
        # running server) left the directory as it was, pg_control included.
        log.info(
            "delta restore failed (%s): %s has no global/pg_control until a delta restore "
            "finishes; run it again",
            type(exc).__name__,
            run.pgdata,
        )


__all__ = ["clean_up", "make_dir", "prepare_directories"]
