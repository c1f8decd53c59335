"""Light helpers shared by the WAL commands; imports nothing heavy (archive_command's path)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from core.errors import InputError
from core.postgres.walnames import is_wal_name


@dataclass(frozen=True)
class FileIdentity:
    """What identifies the exact bytes of a file on disk without reading them.

    A WAL file is written once and then only renamed (recycled) or removed: the same device,
    inode, size, mtime and ctime mean the same bytes.
    """

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def as_list(self) -> list[int]:
        return [self.device, self.inode, self.size, self.mtime_ns, self.ctime_ns]

    @classmethod
    def from_list(cls, values: list[int]) -> FileIdentity:
        device, inode, size, mtime_ns, ctime_ns = (int(v) for v in values)
        return cls(device, inode, size, mtime_ns, ctime_ns)


def wal_name_of(path: str) -> str:
    """The WAL file name of a path; InputError (exit 3) when it is not one, as barman does."""
    name = os.path.basename(path)
    if not is_wal_name(name):
        raise InputError(f"{path} is an invalid name for a WAL file")
    return name


def private_dir(path: str, create: bool = True) -> None:
    """Make sure `path` is a directory of this user that nobody else can write to.

    Spools hold WAL that is handed to PostgreSQL: a directory another user could write
    into (a shared /var/tmp default) must not be trusted.
    """
    import stat

    from core.wal.errors import LocalIOError

    try:
        if create:
            os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise LocalIOError(f"cannot use directory {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise LocalIOError(f"{path} is not a directory owned by this user")
    if st.st_mode & 0o022:
        raise LocalIOError(f"{path} is writable by other users")


def trusted_parent(path: str) -> None:
    """Refuse (InputError, exit 3) a directory whose parent another user could tamper with.

    The parent must be owned by this user or root and not writable by others, unless its
    sticky bit is set (as /tmp's: then nobody else can rename or remove what is in it).
    Whoever can rename entries in the parent can swap the spool for one of their making.
    """
    import stat

    parent = os.path.dirname(os.path.abspath(path))
    try:
        st = os.stat(parent)
    except OSError as exc:
        raise InputError(f"cannot use spool parent directory {parent}: {exc.strerror}") from None
    if st.st_uid not in (0, os.geteuid()):
        raise InputError(
            f"spool parent directory {parent} is owned by another user (uid {st.st_uid}): "
            "choose a --spool-dir of your own"
        )
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise InputError(
            f"spool parent directory {parent} is writable by other users and not sticky: "
            "choose a --spool-dir of your own"
        )
