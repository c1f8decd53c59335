"""A restore killed midway, run again, keeps the files it already wrote and verified.

A failed restore removes what it wrote (core.restore.cleanup), but a SIGKILL, an OOM kill
or a reboot leaves a half-written directory. So before anything is fetched, the restore
writes a marker (`.pgvault-restore`, naming the backup and its system) at the top of the
data directory, and removes it just before global/pg_control is put in place, the last
step. Run again into a directory holding the marker, the restore continues as a delta
restore (core.restore.delta) of the same backup: every file already there with the size
and checksum pgvault.json records is kept (read and checked again now, never trusted from
the first run), the rest is removed and fetched, ranged reads from plain parts included.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import replace

from core.errors import InputError
from core.restore.extract import fsync_path
from core.restore.request import RestoreRequest

MARKER = ".pgvault-restore"


def marked_backup(pgdata: str) -> str | None:
    """The backup a killed restore was writing into this directory, if any."""
    try:
        with open(os.path.join(pgdata, MARKER), "rb") as fh:
            body = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    backup_id = body.get("backup_id") if isinstance(body, dict) else None
    return backup_id if isinstance(backup_id, str) and backup_id else None


def continue_killed(request: RestoreRequest, recovery_dir: str) -> RestoreRequest:
    """The request, as a delta restore when the directory holds a killed restore's marker."""
    if request.delta or marked_backup(recovery_dir) is None:
        return request
    return replace(request, delta=True, continued=True)


def check_same_backup(recovery_dir: str, backup_id: str) -> None:
    """A killed restore's directory is finished with its own backup, never another."""
    marked = marked_backup(recovery_dir)
    if marked is not None and marked != backup_id:
        raise InputError(
            f"{recovery_dir} holds a restore of backup {marked} that was interrupted: restore "
            f"{marked} again to finish it, or empty the directory to restore {backup_id}"
        )


def write_marker(pgdata: str, backup_id: str, systemid: str, sync: bool) -> None:
    """The marker, before anything is fetched (the phase: core.restore.delta)."""
    path = os.path.join(pgdata, MARKER)
    with open(path, "w") as fh:
        fh.write(json.dumps({"backup_id": backup_id, "systemid": systemid}))
        if sync:
            os.fsync(fh.fileno())
    if sync:
        fsync_path(pgdata)


def remove_marker(pgdata: str) -> None:
    """The marker goes just before pg_control is put in place: a directory PostgreSQL can
    start never holds it."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(pgdata, MARKER))
