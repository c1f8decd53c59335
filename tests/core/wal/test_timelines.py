"""Which timeline recovery follows, and which backups lie on its history."""

from __future__ import annotations

from core.postgres.walnames import parse_history, parse_lsn
from core.wal.timelines import followed_timeline, newest_timeline, on_history

# Timeline 2 left 1 at 0/5000000; 3 left 2 at 0/7000000 (its history names both parents).
HISTORIES = {
    2: parse_history("1\t0/5000000\tno recovery target specified\n"),
    3: parse_history("1\t0/5000000\tx\n2\t0/7000000\tx\n"),
}


def test_latest_is_the_last_history_file_before_the_first_missing_one() -> None:
    assert newest_timeline(1, {2, 3}) == 3
    assert newest_timeline(2, {2, 3}) == 3
    assert newest_timeline(1, {3}) == 1  # PostgreSQL probes 2 first and stops there
    assert newest_timeline(4, {2, 3}) == 4


def test_the_followed_timeline_for_each_setting() -> None:
    assert followed_timeline(None, 1, {2, 3}) == 3  # PostgreSQL 12+: latest
    assert followed_timeline(None, 1, {2, 3}, server_version=110000) == 1  # before: current
    assert followed_timeline(None, 1, {2, 3}, server_version=160000) == 3
    assert followed_timeline("latest", 2, {2, 3}) == 3
    assert followed_timeline("current", 2, {2, 3}) == 2
    assert followed_timeline("2", 1, {2, 3}) == 2


def test_a_backup_is_on_a_timelines_history_until_it_leaves_its_parent() -> None:
    def on(timeline: int, end: str, followed: int) -> bool:
        return on_history(timeline, parse_lsn(end), followed, HISTORIES)

    assert on(1, "0/4FFFFFF", 3) and on(1, "0/5000000", 3) and on(1, "0/5000000", 2)
    assert not on(1, "0/5000001", 3) and not on(1, "0/6000000", 2)  # after the fork
    assert on(2, "0/6000000", 3) and not on(2, "0/7000100", 3)
    assert on(3, "0/9000000", 3) and on(1, "0/9000000", 1)
    assert not on(2, "0/6000000", 1)  # a child is never on its parent's history
    assert not on(1, "0/1000000", 4)  # no history file for 4: nothing but 4 itself
