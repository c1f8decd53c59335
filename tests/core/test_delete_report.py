"""How backup-delete reports the WAL it removed: consecutive segments folded into runs."""

from __future__ import annotations

from core.catalog.delete import wal_runs

MiB16 = 16 * 1024 * 1024


def test_consecutive_segments_fold_and_other_files_follow_one_by_one() -> None:
    names = [
        "000000010000000000000005.00000028.backup",
        "000000010000000000000003",
        "000000010000000000000001",
        "000000010000000000000004",
        "00000002.history",
        "000000010000000000000005",
        "0000000100000000000000FF",
        "000000010000000100000000",
    ]
    assert wal_runs(names, MiB16) == [
        ("000000010000000000000001", "000000010000000000000001", 1),
        ("000000010000000000000003", "000000010000000000000005", 3),
        # the segment after ..FF is ..100000000 with 16 MiB segments
        ("0000000100000000000000FF", "000000010000000100000000", 2),
        ("000000010000000000000005.00000028.backup", "000000010000000000000005.00000028.backup", 1),
        ("00000002.history", "00000002.history", 1),
    ]


def test_a_file_between_segments_does_not_break_a_run() -> None:
    names = [
        "000000010000000000000002",
        "000000010000000000000002.00000028.backup",
        "000000010000000000000003",
    ]
    assert wal_runs(names, MiB16)[0] == (
        "000000010000000000000002",
        "000000010000000000000003",
        2,
    )
