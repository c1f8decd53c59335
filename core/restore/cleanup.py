"""What a restore creates, recorded so that a failure or a cancellation removes it all.

Directories the restore creates are removed whole; existing empty directories it wrote
into are emptied again; in an existing restore_command directory only the files it wrote
go. Nothing half-restored is ever left that PostgreSQL would start on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil

from core.errors import OperationFailed, permission_denied
from core.restore.state import RestoreRun

log = logging.getLogger("pgvault.restore")


def make_dir(run: RestoreRun, path: str, create: bool) -> None:
    """Create a directory (and its missing parents), or adopt an existing empty one (an
    existing one under --delta is never emptied: a failed delta restore is run again)."""
    if not create:
        if not run.request.delta:
            run.emptied.append(path)
        return
    missing = []
    probe = path
    while not os.path.exists(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    try:
        os.makedirs(path, mode=0o700)
    except PermissionError as exc:
        raise permission_denied(exc) from None
    except OSError as exc:
        raise OperationFailed(f"cannot create {path}: {exc.strerror}") from None
    run.created.append(missing[-1] if missing else path)


def prepare_directories(run: RestoreRun) -> None:
    """The phase: the recovery directory and each tablespace location, created or adopted."""
    make_dir(run, run.pgdata, run.plan.create_root)
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
    elif run.request.delta:
        log.info(
            "delta restore failed (%s): %s has no global/pg_control until a delta restore "
            "finishes; run it again",
            type(exc).__name__,
            run.pgdata,
        )


__all__ = ["clean_up", "make_dir", "prepare_directories"]
