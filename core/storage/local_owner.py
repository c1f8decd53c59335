"""Who owns what a local store writes: the destination root's owner, and modes from its own.

A backup run as root into a directory postgres owns must not leave files that postgres (as
cron and archive_command run) cannot read or replace: every file and directory created
takes the root's owner and group, and its mode from the root's, never granting "other".
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

OWNER_RW = 0o600
OWNER_RWX = 0o700
GROUP_RW = 0o060
GROUP_RWX = 0o070


@dataclass(frozen=True)
class Ownership:
    """What new files and directories under a root get: its owner (when pgvault runs as
    root and may give files away) and modes derived from the root's."""

    uid: int | None  # None: keep the creating user (not running as root)
    gid: int | None
    file_mode: int
    dir_mode: int

    @classmethod
    def of_root(cls, root: str) -> Ownership:
        st = os.stat(root)
        group = stat.S_IMODE(st.st_mode)
        file_mode = OWNER_RW | (group & GROUP_RW)
        dir_mode = OWNER_RWX | (group & GROUP_RWX)
        if os.geteuid() != 0:
            return cls(None, None, file_mode, dir_mode)
        return cls(st.st_uid, st.st_gid, file_mode, dir_mode)

    def adopt_fd(self, fd: int) -> None:
        """Give an open file the root's owner and the file mode (the umask aside)."""
        if self.uid is not None and self.gid is not None:
            os.fchown(fd, self.uid, self.gid)
        os.fchmod(fd, self.file_mode)

    def adopt_dir(self, path: str) -> None:
        """Give a directory pgvault just created the root's owner and the dir mode."""
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)
        os.chmod(path, self.dir_mode)
