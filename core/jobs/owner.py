"""Who owns what pgvault creates in a state directory: the directory's owner.

`sudo pgvault --state-dir D` in a directory postgres owns (the store archive_command and the
console share) must not leave a root-owned 0600 jobs.db or workers/ that postgres can no
longer open: what root creates there is given to the directory's owner, modes unchanged
(owner-only). SQLite itself gives its -wal and -shm files the database file's owner.
"""

from __future__ import annotations

import os
from pathlib import Path


def owner_for(directory: Path) -> tuple[int, int] | None:
    """The (uid, gid) a file root creates in `directory` takes; None when not running as
    root or the directory is root's own."""
    if os.geteuid() != 0:
        return None
    st = os.stat(directory)
    return None if st.st_uid == 0 else (st.st_uid, st.st_gid)


def adopt_fd(fd: int, directory: Path) -> None:
    """A file just created in `directory` given to the directory's owner."""
    owner = owner_for(directory)
    if owner is not None:
        os.fchown(fd, *owner)


def adopt_path(path: Path) -> None:
    """A directory just created given to its parent's owner."""
    owner = owner_for(path.parent)
    if owner is not None:
        os.chown(path, *owner)
