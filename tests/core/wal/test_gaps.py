"""The gap computation: runs of missing segments per timeline, and the backups each cuts."""

from __future__ import annotations

from core.catalog.backup_info import DONE, BackupInfo
from core.postgres.walnames import parse_history
from core.wal.check import check_backups
from core.wal.gaps import WalGap, archive_gaps, lsn


def seg(tli: int, n: int, log: int = 0) -> str:
    return f"{tli:08X}{log:08X}{n:08X}"


def _backup(backup_id: str, begin: str, end: str) -> BackupInfo:
    return BackupInfo(
        backup_id=backup_id,
        status=DONE,
        begin_wal=begin,
        end_wal=end,
        timeline=int(begin[:8], 16),
        xlog_segment_size=16 << 20,
    )


def test_holes_between_stretches_are_gaps_even_without_backups() -> None:
    archived = {seg(1, n) for n in (2, 3, 6, 9, 10)} | {seg(1, 7) + ".partial", "00000001.history"}
    gaps = archive_gaps(archived)
    assert [(g.first_missing, g.last_missing, g.segments) for g in gaps] == [
        (seg(1, 4), seg(1, 5), 2),
        (seg(1, 7), seg(1, 8), 2),  # a .partial is not the segment
    ]
    assert all(g.backups == () and g.unrestorable == () for g in gaps)
    assert archive_gaps({seg(1, 2), seg(1, 3)}) == []


def test_gaps_are_per_timeline_and_cross_log_boundaries() -> None:
    archived = {seg(1, 0xFE), seg(1, 1, log=1), seg(2, 5), seg(2, 7)}
    gaps = archive_gaps(archived)
    assert [(g.timeline, g.first_missing, g.last_missing) for g in gaps] == [
        (1, seg(1, 0xFF), seg(1, 0, log=1)),
        (2, seg(2, 6), seg(2, 6)),
    ]
    assert gaps[0].names() == [seg(1, 0xFF), seg(1, 0, log=1)]
    assert gaps[0].lsn_range() == ("0/FF000000", "1/1000000")


def test_each_gap_names_the_backups_it_cuts_and_those_it_leaves_unrestorable() -> None:
    archived = {seg(1, n) for n in (2, 3, 4, 6, 7, 10, 11)}
    backups = [
        _backup("20261201T000000", seg(1, 2), seg(1, 3)),  # cut after its end
        _backup("20261202T000000", seg(1, 4), seg(1, 5)),  # 5 is before its end
        _backup("20261203T000000", seg(1, 10), seg(1, 11)),  # after both holes
    ]
    coverage = check_backups(backups, archived, {})
    gaps = archive_gaps(archived, coverage)
    assert gaps == [
        WalGap(1, seg(1, 5), seg(1, 5), 1, ("20261201T000000", "20261202T000000"),
               ("20261202T000000",)),
        WalGap(1, seg(1, 8), seg(1, 9), 2, ("20261201T000000", "20261202T000000"), ()),
    ]  # fmt: skip


def test_a_missing_begin_wal_before_the_oldest_archived_segment_is_a_gap() -> None:
    archived = {seg(1, n) for n in (4, 5, 6)}
    coverage = check_backups([_backup("20261201T000000", seg(1, 3), seg(1, 4))], archived, {})
    (gap,) = archive_gaps(archived, coverage)
    assert (gap.first_missing, gap.segments, gap.unrestorable) == (
        seg(1, 3),
        1,
        ("20261201T000000",),
    )


def test_a_gap_on_the_timeline_recovery_follows_cuts_a_backup_of_the_parent() -> None:
    # Timeline 2 branched at 0/6800000 (in segment 6): a backup on timeline 1 replays
    # 1:3..1:5, then 2:6 onwards; 2:8 is missing.
    histories = {2: parse_history("1\t0/6800000\tno recovery target specified\n")}
    archived = {seg(1, n) for n in (3, 4, 5, 6)} | {seg(2, n) for n in (6, 7, 9)}
    coverage = check_backups(
        [_backup("20261201T000000", seg(1, 3), seg(1, 4))], archived, histories
    )
    (gap,) = archive_gaps(archived, coverage)
    assert (gap.timeline, gap.first_missing, gap.backups) == (2, seg(2, 8), ("20261201T000000",))
    assert gap.unrestorable == ()


def test_lsn_text() -> None:
    assert lsn(0) == "0/0"
    assert lsn(0x1_0500_0000) == "1/5000000"
