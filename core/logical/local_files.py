"""Stored files placed in a restore's staging directory without reading them: a hard
link where the destination is a local directory on the same filesystem, else a kernel copy.

pg_restore only reads its directory (it opens every file read-only), and the local store
never rewrites an object in place (a new version is a new file renamed over the name), so
a link shares bytes that nothing changes while the restore runs; a stored object replaced
or deleted meanwhile leaves the linked one as it was. The links are removed by unlink()
alone (`unlink_all`), before anything could change a mode or open one for writing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

#: a link is refused, not failed: the copy is the answer (other filesystem, a file of
#: another owner under fs.protected_hardlinks, a filesystem without links, too many links)
_NO_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EMLINK})


def same_filesystem(stored: Path, directory: str) -> bool:
    return os.stat(stored).st_dev == os.stat(directory).st_dev


def place(stored: Path, target: str) -> bool:
    """`target` holds the stored file's bytes: True when linked, False when copied."""
    try:
        os.link(stored, target)
        return True
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
    shutil.copyfile(stored, target)  # copy_file_range/sendfile: no bytes through Python
    return False


def unlink_all(paths: list[str]) -> None:
    """Remove the links (never chmod them: a mode set on a link is the stored file's)."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
