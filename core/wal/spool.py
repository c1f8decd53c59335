"""The fast path's spool: markers a background pusher leaves for archive_command.

One spool directory per (destination, server, flags, pg_wal directory), mode 0700:

    ok/<wal name>       text (core.wal.ack.format_marker): the file identity and the key;
                        written only after the store confirmed the object; consumed by
                        archive_command when it returns 0
    error/<wal name>    JSON: exit code and message of the pusher's last failed attempt
    pusher.lock         flock held by the one running pusher; holds its pid
    pusher.log          the pusher's log
    heartbeat           touched by every archive_command call; the pusher exits when it
                        goes stale

archive_command returns 0 only when ok/<name> names the very file it was given (same device,
inode, size, mtime and ctime), so a stale marker can never acknowledge other bytes. This
module imports nothing heavy: it runs inside every archive_command call.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from core.errors import ExitCode, InputError, OperationFailed, PgvaultError
from core.wal import ack
from core.wal.files import FileIdentity, private_dir, trusted_parent, wal_name_of


class PusherFailed(PgvaultError):
    """The pusher's attempt failed; carries the exit code the failure has (1, 2, 3 or 4)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = ExitCode(code) if code in ExitCode.__members__.values() else ExitCode.OTHER


@dataclass(frozen=True)
class Marker:
    identity: FileIdentity
    key: str


@dataclass(frozen=True)
class ErrorMarker:
    identity: FileIdentity
    code: int
    message: str
    at: float


def _replace(path: str, text: str) -> None:
    """Atomically replace `path` (a reader sees the old file, the new one, or none)."""
    temp = f"{path}.{os.getpid()}.tmp"
    with open(temp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(temp, path)


def _write_json(path: str, payload: object) -> None:
    _replace(path, json.dumps(payload))


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class ArchiveSpool:
    """The directory of one pusher and the archive_command calls that use it."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.ok_dir = os.path.join(root, ack.MARKERS)
        self.error_dir = os.path.join(root, ack.ERRORS)
        self.lock_path = os.path.join(root, ack.LOCK)
        self.log_path = os.path.join(root, "pusher.log")
        self.heartbeat_path = os.path.join(root, ack.HEARTBEAT)
        self._lock_fd: int | None = None

    # ---- layout and safety ------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the directories (0700) and refuse one another user could have planted,
        or whose parent another user could swap it in."""
        with contextlib.suppress(OSError):  # a failure is reported by the checks below
            os.makedirs(os.path.dirname(self.root), mode=0o700, exist_ok=True)
        trusted_parent(self.root)
        for path in (self.root, self.ok_dir, self.error_dir):
            private_dir(path)

    def _marker(self, name: str) -> str:
        return os.path.join(self.ok_dir, name)

    def _error(self, name: str) -> str:
        return os.path.join(self.error_dir, name)

    # ---- markers ----------------------------------------------------------------------------

    def write_marker(self, name: str, identity: FileIdentity, key: str) -> None:
        _replace(self._marker(name), ack.format_marker(identity.as_list(), key))

    def read_marker(self, name: str) -> Marker | None:
        found = ack.read_marker(self.root, name)
        if found is None:
            return None
        return Marker(FileIdentity.from_list(found[0]), found[1])

    def remove_marker(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._marker(name))

    def markers(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.ok_dir) if not n.endswith(".tmp")]
        except FileNotFoundError:
            return []

    def unexpected(self, exc: BaseException) -> PgvaultError:
        """What archive_command says of an unexpected error in the pusher: the synchronous
        path's words, and where the pusher logged its stack."""
        return PgvaultError(
            f"unexpected error: {type(exc).__name__}: {exc} (the pusher's log is {self.log_path})"
        )

    def write_error(self, name: str, identity: FileIdentity, code: int, message: str) -> None:
        _write_json(
            self._error(name),
            {
                "identity": identity.as_list(),
                "code": int(code),
                "message": message,
                "at": time.time(),
            },
        )

    def read_error(self, name: str) -> ErrorMarker | None:
        data = _read_json(self._error(name))
        if data is None:
            return None
        try:
            return ErrorMarker(
                FileIdentity.from_list(data["identity"]),
                int(data["code"]),
                str(data["message"]),
                float(data["at"]),
            )
        except (TypeError, KeyError, ValueError):
            return None

    def clear_error(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._error(name))

    def has_error(self, name: str) -> bool:
        return os.path.exists(self._error(name))

    # ---- liveness ---------------------------------------------------------------------------

    def touch_heartbeat(self) -> None:
        with open(self.heartbeat_path, "a"):
            pass
        os.utime(self.heartbeat_path)

    def heartbeat_age(self) -> float:
        try:
            return time.time() - os.stat(self.heartbeat_path).st_mtime
        except FileNotFoundError:
            return float("inf")

    def acquire_lock(self, wait: float = 0.0, signallable: bool = True) -> bool:
        """Become the one pusher of this spool (True), or find another running (False).

        The lock file holds the pid that SIGUSR1 wakes, or 0 when the pusher runs in a
        thread that cannot take signals (a pusher inside another process).
        """
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid() if signallable else 0}\n".encode())
        self._lock_fd = fd
        return True

    def release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def pusher_pid(self) -> int | None:
        """The pid of the running pusher, or None when no pusher holds the lock."""
        return ack.pusher_pid(self.root)

    def wake_pusher(self) -> bool:
        """Ask the running pusher to scan now (SIGUSR1); False when none runs."""
        pid = self.pusher_pid()
        if pid is None:
            return False
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGUSR1)
        return True


def _poll_intervals() -> Iterator[float]:
    delay = 0.002
    while True:
        yield delay
        delay = min(0.05, delay * 1.5)


def archive_through_spool(
    spool: ArchiveSpool,
    wal_path: str,
    timeout: float,
    start_pusher: Callable[[], None],
    respawn_after: float = 3.0,
) -> str:
    """archive_command's side of the fast path: return once the pusher stored this file.

    Raises PusherFailed with the pusher's exit code when its attempt failed, and
    OperationFailed when the file is not stored within `timeout` seconds.
    """
    name = wal_name_of(wal_path)
    try:
        identity = FileIdentity.of(os.stat(wal_path))
    except FileNotFoundError:
        raise InputError(f"WAL file {wal_path} does not exist") from None
    wal_dir = os.path.dirname(os.path.abspath(wal_path))
    if not os.path.isdir(os.path.join(wal_dir, "archive_status")):
        raise InputError(
            f"--async needs the path PostgreSQL gives (%p, inside pg_wal): "
            f"{wal_dir} has no archive_status directory"
        )
    spool.prepare()
    spool.touch_heartbeat()
    marker = spool.read_marker(name)
    if marker is not None:
        spool.remove_marker(name)
        if marker.identity == identity:
            return f"stored by the pusher as {marker.key}"
    # Whatever failed before, this call asks for a fresh attempt.
    spool.clear_error(name)
    spawned = 0.0
    if not spool.wake_pusher():
        start_pusher()
        spawned = time.monotonic()
    deadline = time.monotonic() + timeout
    next_check = time.monotonic() + 1.0
    for delay in _poll_intervals():
        marker = spool.read_marker(name)
        if marker is not None and marker.identity == identity:
            spool.remove_marker(name)
            return f"stored by the pusher as {marker.key}"
        error = spool.read_error(name)
        if error is not None and error.identity == identity:
            raise PusherFailed(error.message, error.code)
        now = time.monotonic()
        if now >= deadline:
            raise OperationFailed(
                f"{name} was not stored within {timeout:g}s; PostgreSQL will retry "
                f"(the pusher's log is {spool.log_path})"
            )
        if now >= next_check:
            next_check = now + 1.0
            spool.touch_heartbeat()
            if spool.pusher_pid() is None and now - spawned >= respawn_after:
                start_pusher()
                spawned = now
        time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
