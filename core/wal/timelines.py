"""Which timeline a recovery follows, and whether a backup lies on that timeline's history.

PostgreSQL (12 and later) defaults to recovery_target_timeline = 'latest': from the backup's
timeline it probes the archive for the next history files (N+1, N+2, ...) and follows the
last one found before the first missing (findNewestTimeLine). It then refuses to start
("requested timeline N is not a child of this server's history") unless the backup's
checkpoint lies on N's history: N itself, or a timeline N's history file names, before the
point where N's history leaves it. pgvault also asks the backup's end to lie before that
point, as recovery along N never replays what the parent wrote after the switch.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from core.postgres.walnames import HistoryEntry

LATEST = "latest"
CURRENT = "current"
#: the first PostgreSQL whose recovery_target_timeline defaults to latest (before: current)
PG_LATEST_DEFAULT = 120000


def newest_timeline(start: int, history_files: Collection[int]) -> int:
    """PostgreSQL's 'latest' from `start`: the last of start+1, start+2, ... with a history."""
    newest = start
    while newest + 1 in history_files:
        newest += 1
    return newest


def followed_timeline(
    setting: str | None,
    backup_timeline: int,
    history_files: Collection[int],
    server_version: int | None = None,
) -> int:
    """The timeline recovery follows for a recovery_target_timeline setting (None: the
    server's default) from a backup on `backup_timeline`."""
    if setting is None:
        old = server_version is not None and server_version < PG_LATEST_DEFAULT
        setting = CURRENT if old else LATEST
    if setting == CURRENT:
        return backup_timeline
    if setting == LATEST:
        return newest_timeline(backup_timeline, history_files)
    return int(setting)


def switch_points(timeline: int, histories: Mapping[int, Sequence[HistoryEntry]]) -> dict[int, int]:
    """Each ancestor of `timeline` -> the LSN where `timeline`'s history leaves it."""
    return {e.parent_timeline: e.switch_lsn for e in histories.get(timeline, ())}


def on_history(
    timeline: int,
    end_lsn: int,
    followed: int,
    histories: Mapping[int, Sequence[HistoryEntry]],
) -> bool:
    """Whether WAL up to `end_lsn` on `timeline` is part of `followed`'s history."""
    if timeline == followed:
        return True
    switch = switch_points(followed, histories).get(timeline)
    return switch is not None and end_lsn <= switch


__all__ = [
    "CURRENT",
    "LATEST",
    "PG_LATEST_DEFAULT",
    "followed_timeline",
    "newest_timeline",
    "on_history",
    "switch_points",
]
