"""The fast path's acknowledgement check, importing only the standard library's basics.

archive_command runs once per WAL file; when the pusher has already stored the file, all
it has to do is find `ok/<name>` naming that very file (device, inode, size, mtime, ctime),
remove it and exit 0. This module does that without loading argparse, logging or enum.
It also names the spools, so that archive_command and the pusher always agree on one.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat

MARKERS = "ok"
HEARTBEAT = "heartbeat"


def spool_root(spool_dir: str, server: str, identity: list[str], wal_dir: str) -> str:
    """<spool_dir>/<server>.<hash of what shapes the uploads and of the pg_wal directory>."""
    text = json.dumps({"argv": identity, "wal_dir": os.path.realpath(wal_dir)})
    digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]
    return os.path.join(spool_dir, f"{server}.{digest}")


def identity_of(st: os.stat_result) -> list[int]:
    """What identifies the exact bytes of a WAL file without reading them."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def is_private_dir(path: str) -> bool:
    """A directory of this user that nobody else can write to (spools are trusted)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def read_marker(root: str, name: str) -> tuple[list[int], str] | None:
    """(identity, key) of ok/<name>, or None when absent or unreadable."""
    try:
        with open(os.path.join(root, MARKERS, name)) as fh:
            data = json.load(fh)
        identity = [int(v) for v in data["identity"]]
        return identity, str(data["key"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
