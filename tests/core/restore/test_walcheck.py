"""A hole in the WAL after the backup against each kind of recovery target."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.catalog.backup_info import DONE, BackupInfo
from core.restore.targets import make_target
from core.restore.walcheck import hole_verdict
from core.storage import ObjectInfo
from core.wal.check import BackupCoverage, check_backups

T0 = datetime.fromisoformat("2026-01-01T10:00:00+00:00")


def seg(n: int) -> str:
    return f"{1:08X}{0:08X}{n:08X}"


def _coverage(stored: dict[str, ObjectInfo]) -> BackupCoverage:
    info = BackupInfo(
        backup_id="20260101T000000", status=DONE, begin_wal=seg(2), end_wal=seg(3), timeline=1
    )
    (coverage,) = check_backups([info], stored.keys(), {}, follow=1)
    return coverage


# Segments 2..9 but 6, segment n stored at T0 + n minutes: the hole is 0/6000000-0/7000000.
STORED = {
    seg(n): ObjectInfo(key=seg(n), size=1, modified=T0 + timedelta(minutes=n))
    for n in range(2, 10)
    if n != 6
}


def verdict(stored: dict[str, ObjectInfo], **target: object) -> tuple[str | None, str | None]:
    return hole_verdict(_coverage(stored), make_target(**target), stored, 1)  # type: ignore[arg-type]


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat(sep=" ")


def test_a_target_lsn_at_or_past_the_hole_fails_one_before_it_passes() -> None:
    failed, _ = verdict(STORED, lsn="0/6000000")
    assert failed and f"first missing segment {seg(6)}" in failed
    assert verdict(STORED, lsn="0/5FFFFFF") == (None, None)
    assert verdict(STORED, immediate=True) == (None, None)
    failed, _ = verdict(STORED)  # the end of the archive is past the hole
    assert failed and "lose what follows" in failed


def test_a_target_time_fails_when_wal_after_the_hole_was_archived_before_it() -> None:
    failed, _ = verdict(STORED, time=at(7.5))  # segment 7 was stored before the target
    assert failed and "archived at" in failed and seg(6) in failed
    assert verdict(STORED, time=at(4)) == (None, None)  # segment 5 ends after it
    _, warned = verdict(STORED, time=at(5.5))  # after 5, before 7: it may be in the hole
    assert warned and seg(6) in warned
    untimed = {name: ObjectInfo(key=name, size=1) for name in STORED}
    assert verdict(untimed, time=at(4))[0] is None
    assert seg(6) in (verdict(untimed, time=at(4))[1] or "")
    failed, warned = verdict(STORED, xid="1234")
    assert failed is None and warned and seg(6) in warned
