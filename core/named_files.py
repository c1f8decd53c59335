"""Files an operator names on the command line or in a reference (a passphrase, an
identity, a policy, a secret): read without waiting, and never more than their cap.

Opened with O_NONBLOCK, so that a FIFO nobody writes to reads as empty instead of hanging
the command; then read blocking, so that a pipe with a writer (`<(pass show pg)`) is read as
it comes. One byte over the cap is read, so that the caller can tell a file too large to be
what it names from one that fits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def read_named_file(
    path: str | Path, cap: int, check: Callable[[os.stat_result], None] | None = None
) -> bytes:
    """Up to cap + 1 bytes of the file; `check` sees its status first (and may raise).
    OSError as the system raised it: the caller names the file in its own words."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        if check is not None:
            check(os.fstat(fd))
        os.set_blocking(fd, True)
        return handle.read(cap + 1)
