"""Which files of a running pg_dump are finished: no process of its group holds them open.

pg_dump -Fd creates, writes and closes each data file in one worker; a file that is listed
in the directory and not open in any process of pg_dump's process group is complete. The
directory is listed before the descriptors are read, so a file created in between is seen
open, never half-written.
"""

from __future__ import annotations

import contextlib
import os


def group_pids(pgid: int) -> list[int]:
    """The processes whose process group is `pgid` (pg_dump and its workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()  # state, ppid, pgrp, ...
        if fields[2:3] == [str(pgid)]:
            pids.append(int(entry))
    return pids


def open_files(pids: list[int]) -> set[str]:
    found = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return found


def finished_files(directory: str, pgid: int, skip: set[str]) -> list[str]:
    """Names in `directory` (not in `skip`) that no process of the group holds open."""
    try:
        names = sorted(n for n in os.listdir(directory) if n not in skip)
    except FileNotFoundError:
        return []
    if not names:
        return []
    held = open_files(group_pids(pgid))
    real = os.path.realpath(directory)
    return [n for n in names if os.path.join(real, n) not in held]


def size_of(directory: str, names: list[str]) -> int:
    total = 0
    for name in names:
        with contextlib.suppress(OSError):
            total += os.stat(os.path.join(directory, name)).st_size
    return total
