"""A stored logical object read back and checked against what its manifest recorded.

The SHA-256 is of pg_dump's bytes, so an encrypted object is checked after age has
authenticated and opened it; a manifest older than checksums records sizes only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from core.errors import IntegrityError
from core.logical.manifest import DumpFile

READ_SIZE = 1024 * 1024


def damaged(key: str, item: DumpFile, sha256: str) -> str | None:
    """Why the object read as `sha256` is not what was stored; None when it is."""
    if item.sha256 is None or item.sha256 == sha256:
        return None
    return f"{key}: SHA-256 {sha256}, {item.sha256} recorded"


def check(key: str, item: DumpFile, sha256: str, backup_id: str) -> None:
    """IntegrityError (exit 1) naming the object when it is not what was stored."""
    why = damaged(key, item, sha256)
    if why is not None:
        raise IntegrityError(
            f"logical backup {backup_id} is damaged ({why}): nothing was restored from it"
        )


def copy_hashing(
    read: Callable[[int], bytes], write: Callable[[bytes], object] | None = None
) -> tuple[int, str]:
    """Read to the end (each chunk to `write`); bytes read and their SHA-256."""
    digest = hashlib.sha256()
    size = 0
    while chunk := read(READ_SIZE):
        digest.update(chunk)
        size += len(chunk)
        if write is not None:
            write(chunk)
    return size, digest.hexdigest()
