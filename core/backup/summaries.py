"""WAL summaries (PostgreSQL 17+): which blocks changed between two LSNs, read from the server.

Summaries must cover [parent start, this start) on this timeline; the summarizer is given a
little time to catch up with pg_backup_start's checkpoint, as PostgreSQL's own incremental
base backup waits for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.postgres.connection import Session
from core.postgres.walnames import format_lsn, parse_lsn

SUMMARIZER_WAIT = 60.0  # seconds, as PostgreSQL waits before "not progressing"
SUMMARIES_FROM = 17


@dataclass
class ForkChanges:
    """One relation fork's changes: blocks modified, and the limit block (created, dropped
    or truncated to) when there is one."""

    blocks: set[int] = field(default_factory=set)
    limit: int | None = None


@dataclass
class SummaryMap:
    """Every change the summaries record, keyed as they key it."""

    forks: dict[tuple[int, int, int, int], ForkChanges] = field(default_factory=dict)
    new_databases: set[tuple[int, int]] = field(default_factory=set)  # (tablespace, database)

    def add(self, row: tuple[int, int, int, int, int, bool]) -> None:
        relfilenode, tablespace, database, fork, block, is_limit = row
        if relfilenode == 0:  # a database created or dropped: every file of it is new
            self.new_databases.add((int(tablespace), int(database)))
            return
        key = (int(tablespace), int(database), int(relfilenode), int(fork))
        changes = self.forks.setdefault(key, ForkChanges())
        if is_limit:
            limit = int(block)
            changes.limit = limit if changes.limit is None else min(changes.limit, limit)
        else:
            changes.blocks.add(int(block))


def read_summaries(
    session: Session,
    timeline: int,
    since: int,
    until: int,
    checkpoint: Callable[[], None],
) -> SummaryMap | str:
    """The changes in [since, until) on `timeline`, or why summaries cannot say."""
    reason = _wait_for_summarizer(session, until, checkpoint)
    if reason:
        return reason
    rows = session.query(
        "SELECT tli, start_lsn::text, end_lsn::text FROM pg_available_wal_summaries() "
        "WHERE tli = %s AND end_lsn > %s::pg_lsn AND start_lsn < %s::pg_lsn",
        (timeline, format_lsn(since), format_lsn(until)),
        "listing WAL summaries",
    )
    gap = _coverage_gap(rows, since, until)
    if gap:
        return gap
    changes = SummaryMap()
    for tli, start, end in rows:
        checkpoint()
        for row in session.query(
            "SELECT relfilenode, reltablespace, reldatabase, relforknumber, relblocknumber, "
            "is_limit_block FROM pg_wal_summary_contents(%s, %s::pg_lsn, %s::pg_lsn)",
            (tli, start, end),
            "reading a WAL summary",
        ):
            changes.add(row)
    return changes


def _wait_for_summarizer(session: Session, until: int, checkpoint: Callable[[], None]) -> str:
    deadline = time.monotonic() + SUMMARIZER_WAIT
    while True:
        row = session.query(
            "SELECT summarized_lsn::text, summarizer_pid FROM pg_get_wal_summarizer_state()",
            None,
            "reading the WAL summarizer's state",
        )[0]
        summarized, pid = parse_lsn(row[0]), int(row[1] or -1)
        if summarized >= until:
            return ""
        if pid < 0 or time.monotonic() > deadline:
            return f"WAL summarization has not reached {format_lsn(until)} (at {row[0]})"
        checkpoint()
        time.sleep(0.2)


def _coverage_gap(rows: list[tuple[object, ...]], since: int, until: int) -> str:
    """Why the summary files do not cover [since, until) without a hole, if they do not.

    Ordered here by LSN: as text (how they are read) 0/10000028 sorts before 0/6000028."""
    reached = since
    for _tli, start, end in sorted(rows, key=lambda row: parse_lsn(str(row[1]))):
        if parse_lsn(str(start)) > reached:
            break
        reached = max(reached, parse_lsn(str(end)))
    if reached < until:
        return (
            f"WAL summaries do not cover {format_lsn(since)}..{format_lsn(until)} "
            f"(summarized without a gap up to {format_lsn(reached)})"
        )
    return ""
