"""Tar members as barman-cloud writes them (PAX format), produced as bytes for a stream.

Only headers, padding and the end-of-archive marker are built here; file contents are
streamed by the caller, so nothing is ever staged on disk.
"""

from __future__ import annotations

import grp
import pwd
import tarfile
from functools import cache

BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 10240


@cache
def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@cache
def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def header(
    name: str,
    size: int,
    mode: int,
    uid: int,
    gid: int,
    mtime: float,
    is_dir: bool = False,
) -> bytes:
    """A PAX header block (or blocks, for long or non-ASCII names and huge sizes)."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.size = 0 if is_dir else size
    info.mode = mode
    info.uid = uid
    info.gid = gid
    info.uname = _user(uid)
    info.gname = _group(gid)
    info.mtime = int(mtime)
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def padding(size: int) -> bytes:
    """The zero bytes that complete a member's last 512-byte block."""
    return b"\0" * (-size % BLOCK)


def end_of_archive(written: int) -> bytes:
    """Two zero blocks, then zeros up to a whole record, as tarfile writes them."""
    total = written + 2 * BLOCK
    return b"\0" * (2 * BLOCK + (-total % RECORD))
