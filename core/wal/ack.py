"""The fast path's acknowledgement, importing only the standard library's lightest modules.

archive_command runs once per WAL file; when the pusher has already stored the file, all
it has to do is find `ok/<name>` naming that very file (device, inode, size, mtime, ctime),
remove it and exit 0. This module does that without loading argparse, logging, enum, re,
json or OpenSSL (each costs milliseconds per call; tui/walack.py counts them): markers are
two lines of text. It also names the spools, so archive_command and the pusher agree on one.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time

MARKERS = "ok"
ERRORS = "error"
HEARTBEAT = "heartbeat"
LOCK = "pusher.lock"
MARKER_FORMAT = "pgvault-wal-stored 1"


def _sha1_hex(data: bytes) -> str:
    """hashlib.sha1 without hashlib, which loads OpenSSL: CPython's builtin module."""
    try:
        sha1 = __import__("_sha1").sha1
    except ImportError:  # an interpreter without it
        sha1 = __import__("hashlib").sha1
    return str(sha1(data, usedforsecurity=False).hexdigest())


def spool_root(spool_dir: str, server: str, identity: list[str], wal_dir: str) -> str:
    """<spool_dir>/<server>.<hash of what shapes the uploads and of the pg_wal directory>."""
    text = "\0".join(["spool 2", os.path.realpath(wal_dir), *identity])
    # surrogateescape: argv bytes that are not UTF-8 hash as they came (the name is refused
    # later, by the parser that says why, not by a UnicodeEncodeError here).
    digest = _sha1_hex(text.encode("utf-8", "surrogateescape"))
    return os.path.join(spool_dir, f"{server}.{digest[:12]}")


def identity_of(st: os.stat_result) -> list[int]:
    """What identifies the exact bytes of a WAL file without reading them."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def format_marker(identity: list[int], key: str) -> str:
    """ok/<name>: the format line, the file identity, the stored object's key."""
    if "\n" in key:
        raise ValueError(f"an object key with a line break: {key!r}")
    return f"{MARKER_FORMAT}\n{' '.join(str(v) for v in identity)}\n{key}\n"


def is_private_dir(path: str) -> bool:
    """A directory of this user that nobody else can write to (spools are trusted)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def read_marker(root: str, name: str) -> tuple[list[int], str] | None:
    """(identity, key) of ok/<name>, or None when absent, unreadable or not a marker."""
    try:
        with open(os.path.join(root, MARKERS, name), encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        if len(lines) != 4 or lines[0] != MARKER_FORMAT or lines[3]:  # noqa: PLR2004
            return None
        identity = [int(v) for v in lines[1].split(" ")]
    except (OSError, ValueError):
        return None
    return (identity, lines[2]) if len(identity) == 5 and lines[2] else None  # noqa: PLR2004


def quick_ack(root: str, wal_path: str) -> str | None:
    """The stored key when the pusher stored this very file (its marker is consumed)."""
    if not (is_private_dir(root) and is_private_dir(os.path.join(root, MARKERS))):
        return None
    name = os.path.basename(wal_path)
    marker = read_marker(root, name)
    if marker is None:
        return None
    try:
        current = identity_of(os.stat(wal_path))
        os.utime(os.path.join(root, HEARTBEAT))
    except OSError:
        return None
    if marker[0] != current:
        return None
    try:
        os.unlink(os.path.join(root, MARKERS, name))
    except FileNotFoundError:
        return None
    return marker[1]


def pusher_pid(root: str) -> int | None:
    """The pid of the pusher holding the spool's lock (0: one that takes no signals), or
    None when no pusher runs."""
    try:
        fd = os.open(os.path.join(root, LOCK), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held: a pusher runs
            text = os.read(fd, 64).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def wait_for_pusher(root: str, wal_path: str, timeout: float) -> str | None:
    """The stored key once the running pusher stored this very file (marker consumed).

    None, and nothing acknowledged, whenever the full command has to take over: no trusted
    spool, no pusher running (or it died meanwhile), the pusher's attempt failed, the file
    is not what PostgreSQL named, or `timeout` seconds passed.
    """
    key = quick_ack(root, wal_path)
    if key is not None:
        return key
    if not (is_private_dir(root) and is_private_dir(os.path.join(root, MARKERS))):
        return None
    pid = pusher_pid(root)
    if pid is None:
        return None  # the full command starts one (with everything it needs to know)
    name = os.path.basename(wal_path)
    error = os.path.join(root, ERRORS, name)
    # Whatever failed before, this call asks for a fresh attempt (as archive_through_spool).
    try:
        os.unlink(error)
    except FileNotFoundError:
        pass
    except OSError:
        return None
    if pid:
        import signal  # here: its enums cost the common case (a marker is there) 3 ms

        try:
            os.kill(pid, signal.SIGUSR1)
        except (ProcessLookupError, PermissionError):
            return None
    return _poll(root, wal_path, error, time.monotonic() + timeout)


def _poll(root: str, wal_path: str, error: str, deadline: float) -> str | None:
    delay, beat = 0.002, time.monotonic() + 1.0
    while True:
        key = quick_ack(root, wal_path)  # also keeps the heartbeat fresh
        if key is not None:
            return key
        now = time.monotonic()
        if os.path.exists(error) or now >= deadline:
            return None  # the full command reports the failure with its exit code
        if now >= beat:
            beat = now + 1.0
            if pusher_pid(root) is None:
                return None
        time.sleep(delay)
        delay = min(0.05, delay * 1.5)
