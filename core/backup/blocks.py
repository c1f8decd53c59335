"""Pure pieces of block-level incrementals: relation file names, page LSNs, block runs.

A relation file is `<relfilenode>[_fsm|_vm|_init][.<segno>]` in a database directory
(`base/<db>/`, `global/`, or `pg_tblspc/<oid>/<PG_version_dir>/<db>/`); everything else is
copied whole when it changed. Block lists are stored as runs `[first, count]`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

GLOBAL_TABLESPACE = 1664
DEFAULT_TABLESPACE = 1663
RELSEG_BLOCKS = 131072  # 1 GiB segments of 8 KiB blocks (PostgreSQL's default build)
FORKS = {"": 0, "fsm": 1, "vm": 2, "init": 3}

_NAME = re.compile(r"^(?P<node>[1-9]\d*)(?:_(?P<fork>fsm|vm|init))?(?:\.(?P<seg>[1-9]\d*))?$")
_LSN = struct.Struct("=II")  # pd_lsn: xlogid (high word), xrecoff (low word), host order


@dataclass(frozen=True, slots=True)
class RelationFile:
    """Where one segment of one relation fork lives, as WAL summaries key it."""

    tablespace: int
    database: int
    relfilenode: int
    fork: int  # 0 main, 1 fsm, 2 vm, 3 init
    segment: int

    @property
    def first_block(self) -> int:
        return self.segment * RELSEG_BLOCKS


def relation_file(path: str) -> RelationFile | None:
    """The relation segment a manifest path names; None for any other file."""
    parts = path.split("/")
    match = _NAME.match(parts[-1])
    if match is None:
        return None
    where = _database_dir(parts[:-1])
    if where is None:
        return None
    tablespace, database = where
    return RelationFile(
        tablespace=tablespace,
        database=database,
        relfilenode=int(match["node"]),
        fork=FORKS[match["fork"] or ""],
        segment=int(match["seg"] or 0),
    )


def _database_dir(parts: list[str]) -> tuple[int, int] | None:
    if parts == ["global"]:
        return GLOBAL_TABLESPACE, 0
    if len(parts) == 2 and parts[0] == "base" and parts[1].isdigit():  # noqa: PLR2004 - base/<db>
        return DEFAULT_TABLESPACE, int(parts[1])
    if len(parts) == 4 and parts[0] == "pg_tblspc" and parts[1].isdigit() and parts[3].isdigit():  # noqa: PLR2004 - pg_tblspc/<oid>/<version dir>/<db>
        return int(parts[1]), int(parts[3])
    return None


def page_lsn(page: bytes | memoryview) -> int:
    """pd_lsn of a page: two host-order u32 words, high then low."""
    high, low = _LSN.unpack_from(page, 0)
    return int(high) << 32 | int(low)


def changed_pages(
    data: bytes | memoryview, first_block: int, since: int, block_size: int
) -> list[int]:
    """Blocks of `data` (starting at `first_block`) to store against a parent started at
    `since`: pd_lsn >= since, and every LSN-0 page (zeroed or WAL-less, pg_probackup's rule)."""
    view = memoryview(data)
    chosen = []
    for index in range(len(view) // block_size):
        lsn = page_lsn(view[index * block_size : index * block_size + 8])
        if lsn == 0 or lsn >= since:
            chosen.append(first_block + index)
    return chosen


def to_runs(blocks: Iterable[int]) -> list[list[int]]:
    """Ascending block numbers -> [[first, count], ...]."""
    runs: list[list[int]] = []
    for number in blocks:
        if runs and runs[-1][0] + runs[-1][1] == number:
            runs[-1][1] += 1
        else:
            runs.append([number, 1])
    return runs


def from_runs(runs: Sequence[Sequence[int]]) -> Iterator[int]:
    """[[first, count], ...] -> the block numbers, ascending."""
    for first, count in runs:
        yield from range(first, first + count)
