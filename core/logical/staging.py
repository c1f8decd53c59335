"""Which files of a running pg_dump are finished: no process of its group holds them open.

pg_dump -Fd creates, writes and closes each data file in one worker; a file that is listed
in the directory and not open in any process of pg_dump's process group is complete. The
directory is listed before the descriptors are read, so a file created in between is seen
open, never half-written.
"""

from __future__ import annotations

import contextlib
import os


def _descendants(pid: int) -> list[int] | None:
    """`pid` and its descendants from /proc/PID/task/TID/children; None without that file."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue  # exited meanwhile
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children", encoding="ascii") as f:
                    todo += [int(c) for c in f.read().split()]
            except FileNotFoundError:
                if os.path.isdir(f"/proc/{current}/task/{tid}"):
                    return None  # a kernel without CONFIG_PROC_CHILDREN
            except OSError:
                continue
    return found


def _group_of(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # state, ppid, pgrp, ...
    return fields[2] if len(fields) > 2 else None  # noqa: PLR2004 - pgrp's place


def group_pids(pgid: int) -> list[int]:
    """The processes whose process group is `pgid` (pg_dump and its workers).

    pg_dump's workers are its children and fork nothing, so while pg_dump lives its tree is
    its group: read only that tree. Every process of /proc is read (~10 ms a poll beside
    pg_dump on a busy host) only when pg_dump is gone or the kernel has no children files.
    """
    tree = _descendants(pgid)
    if tree is not None:
        members = [p for p in tree if _group_of(p) == str(pgid)]
        if len(members) == len(tree):
            return members
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and _group_of(int(e)) == str(pgid)]


def open_files(pids: list[int]) -> set[str]:
    found = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return found


def split_files(directory: str, pgid: int, skip: set[str]) -> tuple[list[str], list[str]]:
    """Names in `directory` (not in `skip`): (those no process of the group holds open,
    those it holds: being written)."""
    try:
        names = sorted(n for n in os.listdir(directory) if n not in skip)
    except FileNotFoundError:
        return [], []
    if not names:
        return [], []
    held = open_files(group_pids(pgid))
    real = os.path.realpath(directory)
    writing = [n for n in names if os.path.join(real, n) in held]
    return [n for n in names if n not in writing], writing


def finished_files(directory: str, pgid: int, skip: set[str]) -> list[str]:
    """Names in `directory` (not in `skip`) that no process of the group holds open."""
    return split_files(directory, pgid, skip)[0]
