"""Tar members as barman-cloud writes them (PAX format), produced as bytes for a stream.

Only headers, padding and the end-of-archive marker are built here; file contents are
streamed by the caller, so nothing is ever staged on disk.
"""

from __future__ import annotations

import grp
import os
import pwd
import tarfile
from dataclasses import dataclass
from functools import cache
from typing import Protocol

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


class Attributes(Protocol):
    """What a tar header records of a file besides its name and size."""

    @property
    def mode(self) -> int: ...
    @property
    def uid(self) -> int: ...
    @property
    def gid(self) -> int: ...
    @property
    def mtime(self) -> float: ...


@dataclass(frozen=True)
class FileAttributes:
    mode: int
    uid: int
    gid: int
    mtime: float

    @classmethod
    def of(cls, st: os.stat_result, mode: int | None = None) -> FileAttributes:
        """A file's own attributes (`mode` overrides its permission bits)."""
        return cls(st.st_mode & 0o7777 if mode is None else mode, st.st_uid, st.st_gid, st.st_mtime)


def header(name: str, size: int, attributes: Attributes, is_dir: bool = False) -> bytes:
    """A PAX header block (or blocks, for long or non-ASCII names and huge sizes)."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.size = 0 if is_dir else size
    info.mode = attributes.mode
    info.uid = attributes.uid
    info.gid = attributes.gid
    info.uname = _user(attributes.uid)
    info.gname = _group(attributes.gid)
    info.mtime = int(attributes.mtime)
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def padding(size: int) -> bytes:
    """The zero bytes that complete a member's last 512-byte block."""
    return b"\0" * (-size % BLOCK)


def end_of_archive(written: int) -> bytes:
    """Two zero blocks, then zeros up to a whole record, as tarfile writes them."""
    total = written + 2 * BLOCK
    return b"\0" * (2 * BLOCK + (-total % RECORD))
