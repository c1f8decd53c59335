"""A restore killed midway, run again, keeps the files it already wrote and verified; a
restore still running keeps its directory to itself.

A failed restore removes what it wrote (core.restore.cleanup), but a SIGKILL, an OOM kill
or a reboot leaves a half-written directory. So before anything is fetched, the restore
writes a marker (`.pgvault-restore`, naming the backup, its system and the restore's owner
as core.catalog.owner records one) at the top of the data directory, holds it locked
(flock) for its whole life, and removes it just before global/pg_control is put in place,
the last step. Run again into a directory holding the marker of a restore that is gone (its
lock released, its owner judged gone, or no owner: an older pgvault's), the restore
continues as a delta restore (core.restore.delta) of the same backup: every file already
there with the size and checksum pgvault.json records is kept (read and checked again now,
never trusted from the first run), the rest is removed and fetched, ranged reads from plain
parts included. A marker whose restore is alive refuses the second one (exit 1).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from core.catalog.owner import judge, this_process
from core.errors import InputError, OperationFailed
from core.restore.extract import fsync_path
from core.restore.request import RestoreRequest

MARKER = ".pgvault-restore"
_OPEN = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW


class RestoreRunning(OperationFailed):
    """Another restore, alive, is writing into the recovery directory."""


def _read(pgdata: str) -> tuple[dict[str, Any], datetime] | None:
    """The marker's body and when it was written; None without one."""
    path = os.path.join(pgdata, MARKER)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
            written = datetime.fromtimestamp(os.fstat(fh.fileno()).st_mtime, UTC)
    except OSError:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}  # torn: an older pgvault killed mid-write (a marker is published whole)
    return (body if isinstance(body, dict) else {}), written


def marked_backup(pgdata: str) -> str | None:
    """The backup a killed restore was writing into this directory, if any."""
    found = _read(pgdata)
    backup_id = found[0].get("backup_id") if found else None
    return backup_id if isinstance(backup_id, str) and backup_id else None


def marked_tablespaces(pgdata: str) -> dict[str, str]:
    """The tablespace locations (OID: real path) a killed restore was writing, by its marker."""
    found = _read(pgdata)
    body = found[0] if found else {}
    return {
        key[len(TABLESPACE_KEY) :]: value
        for key, value in body.items()
        if key.startswith(TABLESPACE_KEY) and isinstance(value, str)
    }


def _alive(pgdata: str) -> str | None:
    """Why the restore that wrote the marker is alive (core.catalog.owner.judge on its owner,
    the marker's age as its heartbeat); None when it is gone or names no owner."""
    found = _read(pgdata)
    owner = found[0].get("owner") if found else None
    if found is None or not isinstance(owner, dict):
        return None
    verdict = judge(owner, found[1])
    return None if verdict.abandoned else verdict.reason


def _running(pgdata: str, reason: str | None) -> RestoreRunning:
    why = reason or "its marker is locked"
    return RestoreRunning(
        f"another restore is writing into {pgdata} ({why}): wait for it to end, or stop it "
        "and run this restore again"
    )


def refuse_running(recovery_dir: str) -> None:
    """RestoreRunning (exit 1) when the directory's marker belongs to a live restore."""
    reason = _alive(recovery_dir)
    if reason is not None:
        raise _running(recovery_dir, reason)


def continue_killed(request: RestoreRequest, recovery_dir: str) -> RestoreRequest:
    """The request, as a delta restore when the directory holds a killed restore's marker;
    RestoreRunning when that restore is alive."""
    refuse_running(recovery_dir)
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


def _publish(pgdata: str, body: dict[str, Any], sync: bool, exclusive: bool) -> int:
    """A new marker holding `body`, locked before it is put in place (linked: only where
    there is none; else renamed over the old one), so that no reader ever sees a marker
    half-written or unlocked; its descriptor."""
    path = os.path.join(pgdata, MARKER)
    temp = f"{path}.{uuid.uuid4().hex}"
    fd = os.open(temp, _OPEN | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: granted
        os.write(fd, json.dumps({**body, "owner": this_process()}).encode())
        if sync:
            os.fsync(fd)
        if exclusive:
            os.link(temp, path)  # FileExistsError: another restore's marker is there
            os.unlink(temp)
        else:
            os.replace(temp, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if sync:
        fsync_path(pgdata)
    return fd


@dataclass
class Claim:
    """The marker this restore holds locked: the kernel releases the lock when the process
    ends, however it ends, so a locked marker is a live restore's."""

    pgdata: str
    fd: int
    made: bool  # this restore created the marker
    backup: dict[str, str]  # what it names of the backup ({} until a delta restore's checks)

    def write(self, backup: dict[str, str], sync: bool) -> None:
        """The marker names the backup (and this restore as its owner)."""
        fd = _publish(self.pgdata, backup, sync, exclusive=False)
        self.release()  # the old one, replaced
        self.fd, self.backup = fd, backup

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _still_there(fd: int, path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
    except FileNotFoundError:
        return False


def _take_over(pgdata: str) -> int | None:
    """The marker of a restore that is gone, opened and locked; None when there is none."""
    path = os.path.join(pgdata, MARKER)
    try:
        fd = os.open(path, _OPEN)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _running(pgdata, _alive(pgdata)) from None
        if not _still_there(fd, path):  # replaced or removed while it was opened
            raise _running(pgdata, "it replaced its marker meanwhile")
        reason = _alive(pgdata)
        if reason is not None:  # unlocked, yet its owner runs: another host's, say
            raise _running(pgdata, reason)
    except BaseException:
        os.close(fd)
        raise
    return fd


def claim(pgdata: str, backup: dict[str, str], sync: bool, fresh: bool) -> Claim:
    """Create or take over the marker, locked (RestoreRunning when a live restore has it);
    `fresh`: the directory was empty, so an existing marker is a concurrent restore's."""
    try:
        return Claim(pgdata, _publish(pgdata, backup, sync, exclusive=True), True, backup)
    except FileExistsError:
        if fresh:  # an empty directory gained a marker since it was checked
            raise _running(pgdata, _alive(pgdata) or "it wrote its marker meanwhile") from None
    old = _take_over(pgdata)
    if old is None:
        raise _running(pgdata, "it removed its marker meanwhile")
    held = Claim(pgdata, old, False, {})
    try:
        held.write(backup, sync)
    except BaseException:
        held.release()
        raise
    return held


#: a marker's key naming the location a tablespace (by OID) is restored into
TABLESPACE_KEY = "tablespace "


def write_marker(
    held: Claim | None,
    backup_id: str,
    systemid: str,
    sync: bool,
    tablespaces: Mapping[str, str] | None = None,
) -> None:
    """The marker names the backup, before anything is fetched (the phase: core.restore.delta),
    and the tablespace locations (OID: path) this restore writes: a rerun finds them filled
    before the pg_tblspc links that would say they are this directory's are laid out."""
    if held is None:
        raise RuntimeError("the recovery directory's marker is not held")
    backup = {"backup_id": backup_id, "systemid": systemid}
    for oid, root in sorted((tablespaces or {}).items()):
        backup[TABLESPACE_KEY + oid] = os.path.realpath(root)
    if held.backup != backup:  # a delta restore's, its checks passed
        held.write(backup, sync)


def drop_unnamed_marker(held: Claim | None) -> None:
    """A failed restore's marker goes when this restore made it and never named the backup
    (a delta restore refused by its checks): it left nothing a rerun could continue."""
    if held is not None and held.made and not held.backup:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(held.pgdata, MARKER))


def remove_marker(pgdata: str) -> None:
    """The marker goes just before pg_control is put in place: a directory PostgreSQL can
    start never holds it."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(pgdata, MARKER))
