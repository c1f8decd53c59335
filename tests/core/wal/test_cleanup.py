"""Which WAL a deletion frees: barman-cloud's rule (reference §4.4) and pgvault's guards."""

from __future__ import annotations

from collections.abc import Iterable

from core.catalog.backup_info import DONE, FAILED, STARTED, BackupInfo
from core.wal.cleanup import plan_wal_cleanup


def seg(n: int, tli: int = 1) -> str:
    return f"{tli:08X}{0:08X}{n:08X}"


def label(n: int, tli: int = 1) -> str:
    return f"{seg(n, tli)}.00000028.backup"


def backup(backup_id: str, begin: int, end: int, status: str = DONE, tli: int = 1) -> BackupInfo:
    return BackupInfo(
        backup_id=f"202603{backup_id}T000000",
        status=status,
        begin_wal=seg(begin, tli) if begin else None,
        end_wal=seg(end, tli) if end else None,
        timeline=tli if begin else None,
    )


def archive(names: Iterable[str]) -> list[tuple[str, str]]:
    """(name, key) as the store lists them (the keys carry a compression suffix)."""
    return [
        (n, f"pg/wals/{n}.gz" if n.endswith(".history") else f"pg/wals/{n[:16]}/{n}.gz")
        for n in names
    ]


def removed(plan_remove: tuple[tuple[str, str], ...]) -> set[str]:
    return {name for name, _ in plan_remove}


A, B, C = backup("01", 2, 3), backup("02", 5, 6), backup("03", 8, 9)
WAL = [seg(n) for n in range(1, 12)] + [label(2), label(5), label(8), "00000002.history"]


def test_deleting_the_oldest_backup_frees_the_wal_before_the_next_one() -> None:
    plan = plan_wal_cleanup(A, [A, B, C], {}, archive(WAL), skip_if_standalone=True)
    assert plan.cutoff == seg(5)
    assert removed(plan.remove) == {seg(1), seg(2), seg(3), seg(4), label(2)}
    assert plan.keys[0] == f"pg/wals/{seg(1)[:16]}/{seg(1)}.gz"
    assert f"first WAL of backup {B.backup_id}" in plan.reason


def test_an_older_backup_needs_every_wal_after_it() -> None:
    plan = plan_wal_cleanup(B, [A, B, C], {}, archive(WAL), skip_if_standalone=False)
    assert plan.remove == () and A.backup_id in plan.reason
    plan = plan_wal_cleanup(
        B, [A, B, C], {A.backup_id: "full"}, archive(WAL), skip_if_standalone=False
    )
    assert plan.remove == ()


def test_keep_standalone_protects_only_its_own_range() -> None:
    keeps = {A.backup_id: "standalone"}
    # A -b deletion stops at a standalone backup (barman's default)...
    plan = plan_wal_cleanup(B, [A, B, C], keeps, archive(WAL), skip_if_standalone=True)
    assert plan.remove == () and "keep:standalone" in plan.reason
    # ...a retention run removes everything before C except A's range (and its label).
    plan = plan_wal_cleanup(B, [A, B, C], keeps, archive(WAL), skip_if_standalone=False)
    assert plan.cutoff == seg(8) and plan.protected_ranges == ((seg(2), seg(3)),)
    assert removed(plan.remove) == {seg(1), seg(4), seg(5), seg(6), seg(7), label(5)}


def test_without_a_later_backup_only_wal_before_the_deleted_one_goes() -> None:
    plan = plan_wal_cleanup(C, [C], {}, archive(WAL), skip_if_standalone=True)
    assert plan.cutoff == seg(8)
    assert seg(8) not in removed(plan.remove) and seg(7) in removed(plan.remove)


def test_history_files_and_other_timelines_with_backups_stay() -> None:
    d2 = backup("04", 12, 13, tli=2)
    wal = [*WAL, seg(12, 2), seg(13, 2), seg(14, 2)]
    # C is on timeline 1 and deleted: the next backup D is on timeline 2, and timeline 1
    # keeps no backup, so all of timeline 1 goes (it sorts below D's first WAL)...
    plan = plan_wal_cleanup(C, [C, d2], {}, archive(wal), skip_if_standalone=True)
    assert removed(plan.remove) == {n for n in WAL if not n.endswith(".history")}
    # ...unless a backup on timeline 1 remains (here a standalone one behind C).
    keeps = {B.backup_id: "standalone"}
    plan = plan_wal_cleanup(C, [B, C, d2], keeps, archive(wal), skip_if_standalone=False)
    assert plan.protected_timelines == (1,) and plan.remove == ()


def test_a_started_backup_keeps_its_wal() -> None:
    running = BackupInfo(backup_id="20260302T120000", status=STARTED, begin_wal=seg(6), timeline=1)
    plan = plan_wal_cleanup(B, [B, running, C], {}, archive(WAL), skip_if_standalone=True)
    assert plan.cutoff == seg(6) and running.backup_id in plan.reason
    assert seg(6) not in removed(plan.remove) and seg(5) in removed(plan.remove)
    # One that has no begin WAL yet stops the cleanup, unless its process is known dead.
    starting = BackupInfo(backup_id="20260302T130000", status=STARTED)
    plan = plan_wal_cleanup(B, [B, starting, C], {}, archive(WAL), skip_if_standalone=True)
    assert plan.remove == () and "is starting" in plan.reason
    plan = plan_wal_cleanup(
        B, [B, starting, C], {}, archive(WAL), skip_if_standalone=True, dead={starting.backup_id}
    )
    assert plan.cutoff == seg(8)


def test_failed_backups_protect_nothing_and_a_clock_set_back_cannot_free_wal() -> None:
    failed = backup("02", 4, 0, status=FAILED)
    plan = plan_wal_cleanup(A, [A, failed, C], {}, archive(WAL), skip_if_standalone=True)
    assert plan.cutoff == seg(8)
    # A later ID (the clock was set back) with an earlier first WAL holds the cutoff.
    early = backup("05", 4, 4)
    plan = plan_wal_cleanup(A, [A, C, early], {}, archive(WAL), skip_if_standalone=True)
    assert plan.cutoff == seg(4) and early.backup_id in plan.reason


def test_a_deleted_backup_without_begin_wal_frees_nothing() -> None:
    failed = BackupInfo(backup_id="20260301T000000", status=FAILED)
    plan = plan_wal_cleanup(failed, [failed], {}, archive(WAL), skip_if_standalone=True)
    assert plan.remove == () and "no begin WAL" in plan.reason
