"""Retention policies: parsing, barman's evaluation (checked against barman's own code), and
pgvault's removal of FAILED backups older than the newest DONE one."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from core.catalog.backup_info import DONE, FAILED, STARTED, BackupInfo
from core.catalog.retention import (
    KEEP_FULL,
    KEEP_STANDALONE_STATUS,
    NONE,
    OBSOLETE,
    POTENTIALLY_OBSOLETE,
    VALID,
    evaluate,
    parse_policy,
)
from core.errors import InputError
from tests.support.barman_oracle import barman_report

DAY = timedelta(days=1)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def backup(day: int, status: str = DONE, hour: int = 0) -> BackupInfo:
    begin = T0 + day * DAY + timedelta(hours=hour)
    return BackupInfo(
        backup_id=begin.strftime("%Y%m%dT%H%M%S"),
        status=status,
        begin_time=begin,
        end_time=begin + timedelta(minutes=10) if status == DONE else None,
    )


def test_policies_parse_as_barman_writes_them() -> None:
    assert str(parse_policy("REDUNDANCY 2")) == "REDUNDANCY 2"
    assert str(parse_policy("  redundancy   10 ")) == "REDUNDANCY 10"
    window = parse_policy("recovery window of 1 month")
    assert str(window) == "RECOVERY WINDOW OF 1 MONTHS" and window.window == 31 * DAY
    assert parse_policy("RECOVERY WINDOW OF 2 WEEKS").window == 14 * DAY
    assert parse_policy("Recovery Window Of 3 days").window == 3 * DAY
    for bad in ("REDUNDANCY two", "REDUNDANCY -1", "RECOVERY WINDOW 3 DAYS", "KEEP 3", ""):
        with pytest.raises(InputError, match="invalid retention policy"):
            parse_policy(bad)


def test_redundancy_keeps_the_newest_n_and_kept_backups_count() -> None:
    backups = [backup(0), backup(1), backup(2, FAILED), backup(3), backup(4, STARTED)]
    ids = [b.backup_id for b in backups]
    report = evaluate(parse_policy("REDUNDANCY 1"), backups, {}, now=T0)
    assert report.statuses == (
        (ids[0], OBSOLETE),
        (ids[1], OBSOLETE),
        (ids[2], NONE),
        (ids[3], VALID),
        (ids[4], NONE),
    )
    assert report.obsolete == (ids[0], ids[1])
    assert report.failed == (ids[2],)  # FAILED and older than the newest DONE backup
    assert report.to_delete == (ids[0], ids[1], ids[2])

    # A kept backup is never obsolete, but it counts towards n.
    report = evaluate(parse_policy("REDUNDANCY 2"), backups, {ids[3]: "standalone"}, now=T0)
    assert report.status(ids[3]) == KEEP_STANDALONE_STATUS
    assert report.status(ids[1]) == VALID and report.status(ids[0]) == OBSOLETE
    report = evaluate(parse_policy("REDUNDANCY 1"), backups, {ids[0]: "full"}, now=T0)
    assert report.status(ids[0]) == KEEP_FULL and report.obsolete == (ids[1],)

    # A minimum redundancy above n wins.
    report = evaluate(parse_policy("REDUNDANCY 1"), backups, {}, minimum_redundancy=3, now=T0)
    assert report.obsolete == ()


def test_an_incremental_whose_parent_is_gone_is_no_restorable_point() -> None:
    """REDUNDANCY counts restorable points: an incremental whose full backup was deleted by
    hand is not one, so it neither takes a place nor is deleted by the policy."""
    first, second = backup(0), backup(1)
    gone = backup(2)  # a full deleted out of band: only its incremental is listed
    orphan = replace(backup(3), parent_backup_id=gone.backup_id)
    chained = replace(backup(4), parent_backup_id=second.backup_id)
    report = evaluate(parse_policy("REDUNDANCY 2"), [first, second, orphan, chained], {}, now=T0)
    assert report.status(orphan.backup_id) == NONE
    assert report.status(chained.backup_id) == VALID
    assert report.status(second.backup_id) == VALID
    assert report.obsolete == (first.backup_id,)
    window = evaluate(
        parse_policy("RECOVERY WINDOW OF 1 DAYS"),
        [first, second, orphan, chained],
        {},
        minimum_redundancy=2,
        now=T0 + 30 * DAY,
    )
    assert window.status(orphan.backup_id) == NONE
    assert window.status(second.backup_id) == POTENTIALLY_OBSOLETE


def test_failed_backups_newer_than_the_newest_done_one_stay() -> None:
    backups = [backup(0, FAILED), backup(1), backup(2, FAILED)]
    report = evaluate(parse_policy("REDUNDANCY 5"), backups, {})
    assert report.failed == (backups[0].backup_id,)
    # No DONE backup at all: nothing FAILED goes (there is nothing better to keep).
    only_failed = [backup(0, FAILED), backup(1, FAILED)]
    assert evaluate(parse_policy("REDUNDANCY 1"), only_failed, {}).to_delete == ()


def test_an_abandoned_started_backup_goes_by_the_rule_of_failed_ones() -> None:
    """A STARTED backup whose owner is gone is what a kill leaves before the next backup's
    reaper marks it FAILED (a host without the key never does): `jobs resume` may continue
    it, so it stays while no newer backup is DONE, and goes once one is, as a FAILED one."""
    full = backup(0)
    policy = parse_policy("REDUNDANCY 1")
    newer = backup(2)
    for parent in (full.backup_id, None):  # an incremental, a full backup
        killed = replace(backup(1, STARTED), parent_backup_id=parent)
        reaped = replace(killed, status=FAILED)
        for interrupted in (killed, reaped):
            report = evaluate(policy, [full, interrupted], {}, abandoned={killed.backup_id})
            assert report.to_delete == (), (parent, interrupted.status)
        for interrupted in (killed, reaped):
            backups = [full, interrupted, newer]
            report = evaluate(policy, backups, {}, abandoned={killed.backup_id})
            assert report.to_delete == (full.backup_id, killed.backup_id), interrupted.status
        # One whose owner may be alive is never removed.
        report = evaluate(policy, [full, killed, newer], {})
        assert report.to_delete == (full.backup_id,)


def test_recovery_window_with_an_injected_clock() -> None:
    backups = [backup(0), backup(2), backup(4), backup(6)]
    ids = [b.backup_id for b in backups]
    policy = parse_policy("RECOVERY WINDOW OF 3 DAYS")
    # Day 8 minus 3 days is day 5: day 6 is inside, day 4 is the first outside (kept: the
    # window's start is recovered from it), days 2 and 0 are obsolete.
    now = T0 + 8 * DAY
    report = evaluate(policy, backups, {}, now=now)
    assert report.point_of_recoverability == now - 3 * DAY
    assert [s for _, s in report.statuses] == [OBSOLETE, OBSOLETE, VALID, VALID]
    # A day later the same catalog loses one more backup.
    report = evaluate(policy, backups, {}, now=now + 2 * DAY)
    assert report.obsolete == (ids[0], ids[1], ids[2])
    # The minimum redundancy holds obsolete backups back as OBSOLETE* (day 6 is the first
    # outside the window now, and valid: two more are needed to make three).
    report = evaluate(policy, backups, {}, minimum_redundancy=3, now=now + 2 * DAY)
    assert [s for _, s in report.statuses] == [
        OBSOLETE,
        POTENTIALLY_OBSOLETE,
        POTENTIALLY_OBSOLETE,
        VALID,
    ]
    assert report.obsolete == (ids[0],)
    # A naive clock is local time, as barman reads it.
    naive = (now + 2 * DAY).astimezone().replace(tzinfo=None)
    assert evaluate(policy, backups, {}, now=naive).obsolete == (ids[0], ids[1], ids[2])


@pytest.mark.parametrize("seed", range(6))
def test_statuses_match_barmans_own_retention_code(seed: int) -> None:
    rng = random.Random(seed)
    backups = [
        backup(day, rng.choice([DONE, DONE, DONE, FAILED, STARTED]), hour=rng.randrange(24))
        for day in range(rng.randrange(4, 12))
    ]
    done = [b.backup_id for b in backups if b.status == DONE]
    keeps = {bid: rng.choice(["full", "standalone"]) for bid in rng.sample(done, len(done) // 4)}
    now = T0 + rng.randrange(0, 15) * DAY + timedelta(hours=rng.randrange(24))
    minimum = rng.choice([0, 0, 1, 3])
    policies = [
        f"REDUNDANCY {rng.randrange(0, 5)}",
        f"RECOVERY WINDOW OF {rng.randrange(1, 8)} DAYS",
    ]
    policies.append("RECOVERY WINDOW OF 1 WEEKS")
    for text in policies:
        ours = dict(evaluate(parse_policy(text), backups, keeps, minimum, now).statuses)
        assert ours == barman_report(text, backups, keeps, minimum, now), text
