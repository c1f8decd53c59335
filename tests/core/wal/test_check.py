"""check-wal-archive's rules and the gap check, on archive listings."""

from __future__ import annotations

import pytest

from core.catalog.backup_info import DONE, FAILED, BackupInfo
from core.postgres.walnames import parse_history, segment_range
from core.wal.check import check_archive_usable, check_backups, missing_segments
from core.wal.errors import ArchiveNotUsable


def seg(tli: int, n: int) -> str:
    return f"{tli:08X}{0:08X}{n:08X}"


def test_a_new_server_needs_an_empty_archive_or_a_newer_timeline() -> None:
    check_archive_usable([])
    with pytest.raises(ArchiveNotUsable, match="expected an empty WAL archive"):
        check_archive_usable([seg(1, 1)])
    check_archive_usable([seg(1, 1), seg(1, 2), "00000001.history"], timeline=2)
    with pytest.raises(ArchiveNotUsable, match="1 file in the WAL archive"):
        check_archive_usable([seg(1, 1), "00000002.history"], timeline=2)
    with pytest.raises(ArchiveNotUsable, match="2 files"):
        check_archive_usable([seg(2, 1), seg(3, 1), seg(1, 9)], timeline=2)


def test_missing_segments_per_range() -> None:
    archived = {seg(1, n) for n in (3, 4, 6, 7)} | {seg(1, 5) + ".partial"}
    gaps = missing_segments([(seg(1, 3), seg(1, 7), 1), (seg(1, 3), seg(1, 4), 1)], archived)
    assert len(gaps) == 1
    assert gaps[0].missing == (seg(1, 5),)  # a .partial is not the segment
    # Crossing a log boundary.
    names = segment_range("0000000100000000000000FE", "000000010000000100000001")
    gaps = missing_segments([(names[0], names[-1], 1)], set(names) - {names[2]})
    assert gaps[0].missing == ("000000010000000100000000",)


def _backup(backup_id: str, begin: str, end: str, status: str = DONE) -> BackupInfo:
    return BackupInfo(
        backup_id=backup_id,
        status=status,
        begin_wal=begin,
        end_wal=end,
        timeline=int(begin[:8], 16),
        xlog_segment_size=16 * 1024 * 1024,
    )


def test_every_backup_has_its_segments_and_no_hole_after_it() -> None:
    archived = {seg(1, n) for n in range(2, 12) if n != 9}
    backups = [
        _backup("20260101T000000", seg(1, 2), seg(1, 3)),
        _backup("20260102T000000", seg(1, 8), seg(1, 10)),
        _backup("20260103T000000", seg(1, 12), seg(1, 13)),
        _backup("20260104T000000", seg(1, 1), seg(1, 1), status=FAILED),
    ]
    first, second, third = check_backups(backups, archived, {})
    assert first.missing == [] and first.gaps_after == [seg(1, 9)]
    assert first.recoverable_until == seg(1, 8)
    assert second.missing == [seg(1, 9)] and not second.ok
    assert third.missing == [seg(1, 12), seg(1, 13)]


def test_the_gap_check_follows_the_timeline_history() -> None:
    # Timeline 2 branched from 1 inside segment 5: 1 needs 2..4, 2 carries 5 onwards.
    histories = {2: parse_history("1\t0/5000EC0\tno recovery target specified\n")}
    archived = {seg(1, n) for n in (2, 3, 4)} | {seg(1, 5) + ".partial"}
    archived |= {seg(2, n) for n in (5, 6, 7)} | {"00000002.history"}
    (coverage,) = check_backups(
        [_backup("20260101T000000", seg(1, 2), seg(1, 3))], archived, histories
    )
    assert coverage.ok
    assert coverage.recoverable_until == seg(2, 7)
    archived.discard(seg(2, 6))
    (coverage,) = check_backups(
        [_backup("20260101T000000", seg(1, 2), seg(1, 3))], archived, histories
    )
    assert coverage.gaps_after == [seg(2, 6)]
    assert coverage.recoverable_until == seg(2, 5)


def test_the_gap_check_follows_the_timeline_it_is_told() -> None:
    # Timeline 2 left 1 inside segment 5 while timeline 1 went on to segment 9 with a hole
    # at 8: following 2, that hole is not on the way; following 1, it is.
    histories = {2: parse_history("1\t0/5000EC0\tno recovery target specified\n")}
    archived = {seg(1, n) for n in (2, 3, 4, 5, 6, 7, 9)} | {seg(2, n) for n in (5, 6, 7)}
    backup = _backup("20260101T000000", seg(1, 2), seg(1, 3))
    (on_two,) = check_backups([backup], archived, histories, follow=2)
    assert on_two.ok and on_two.path[-4:] == [seg(1, 4), seg(2, 5), seg(2, 6), seg(2, 7)]
    (on_one,) = check_backups([backup], archived, histories, follow=1)
    assert on_one.gaps_after == [seg(1, 8)] and on_one.recoverable_until == seg(1, 7)
    (latest,) = check_backups([backup], archived, histories)
    assert latest.path == on_two.path  # the default follows the newest descendant


def test_a_backup_taken_after_a_fork_is_checked_along_its_own_timeline() -> None:
    # Timeline 2 left 1 inside segment 5; timeline 1 went on and a backup was taken at 7.
    histories = {2: parse_history("1\t0/5000EC0\tno recovery target specified\n")}
    archived = {seg(1, n) for n in range(2, 10)} | {seg(2, n) for n in (5, 6)}
    (coverage,) = check_backups(
        [_backup("20260101T000000", seg(1, 7), seg(1, 8))], archived, histories
    )
    assert coverage.ok and coverage.path == [seg(1, 7), seg(1, 8), seg(1, 9)]
