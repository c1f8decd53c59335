"""400-day simulations of the seed's policies, checked day by day against an independent count."""

from __future__ import annotations

import calendar
import json
from datetime import UTC, datetime, timedelta

from core.protection.policy import BackupType, DataStoreType
from core.protection.policy_read import parse_policy
from core.protection.retention import BackupPoint
from core.protection.simulate import EventKind, simulate
from core.protection.template import default_policy_template
from tests.core.protection.policies import edited_policy, osspol5_text

VAULT = DataStoreType.VAULT
ARCHIVE = DataStoreType.ARCHIVE
DAYS = 400


def plus_months(when: datetime, months: int) -> datetime:
    year, month = divmod(when.month - 1 + months, 12)
    year += when.year
    return when.replace(
        year=year, month=month + 1, day=min(when.day, calendar.monthrange(year, month + 1)[1])
    )


def weekly_slots(start: datetime, weekdays: set[int], hour: int) -> list[datetime]:
    """Every day of the period on one of the weekdays (Monday 0), at hour UTC."""
    days = (start + timedelta(days=n) for n in range(DAYS))
    return [d.replace(hour=hour) for d in days if d.weekday() in weekdays]


def first_of_month(slots: list[datetime]) -> set[datetime]:
    seen: set[tuple[int, int]] = set()
    firsts = set()
    for slot in slots:
        if (slot.year, slot.month) not in seen:
            seen.add((slot.year, slot.month))
            firsts.add(slot)
    return firsts


def test_osspol5_over_400_days_keeps_exactly_what_its_rules_say() -> None:
    start = datetime(2020, 4, 1, tzinfo=UTC)
    simulation = simulate(parse_policy(osspol5_text()), start, start + timedelta(days=DAYS))
    slots = weekly_slots(
        start, {2, 5}, 20
    )  # "R/2020-04-04T20:00/P1W" (Sat), "R/2020-04-01T20:00/P1W" (Wed)
    monthly = first_of_month(slots)
    assert [e.at for e in simulation.backups()] == slots
    assert {e.at for e in simulation.backups() if e.tag == "Monthly"} == monthly
    for n in range(DAYS):
        now = start + timedelta(days=n, hours=23, minutes=59)
        expected = {
            s.strftime("%Y%m%dT%H%M%S")
            for s in slots
            if s <= now and s.replace(year=s.year + (10 if s in monthly else 1)) > now
        }
        assert set(simulation.kept_at(now)) == expected, now
    deleted = [e for e in simulation.events if e.kind is EventKind.DELETE]
    assert deleted and all(e.tag == "Default" for e in deleted)


def test_the_helper_built_policy_over_400_days_moves_monthly_backups_to_the_archive() -> None:
    start = datetime(2021, 8, 15, tzinfo=UTC)
    simulation = simulate(
        parse_policy(json.dumps(edited_policy())), start, start + timedelta(days=DAYS)
    )
    slots = weekly_slots(start, {6, 2, 4}, 22)  # Sun, Wed, Fri at 22:00 UTC
    monthly = first_of_month(slots)
    assert [e.at for e in simulation.backups()] == slots
    for n in range(DAYS):
        now = start + timedelta(days=n, hours=23, minutes=59)
        expected = {}
        for s in slots:
            if s > now:
                continue
            if s in monthly:
                expected[s.strftime("%Y%m%dT%H%M%S")] = frozenset(
                    {VAULT if plus_months(s, 6) > now else ARCHIVE}
                )
            elif plus_months(s, 3) > now:
                expected[s.strftime("%Y%m%dT%H%M%S")] = frozenset({VAULT})
        assert simulation.kept_at(now) == expected, now
    assert {e.kind for e in simulation.events} == {
        EventKind.BACKUP,
        EventKind.MOVE,
        EventKind.DELETE,
    }


def test_existing_backups_are_expired_but_the_newest_good_one_is_kept() -> None:
    policy = parse_policy(osspol5_text())
    old = BackupPoint("20190101T000000", datetime(2019, 1, 1, tzinfo=UTC), "Default")
    before_first_slot = datetime(2020, 3, 1, tzinfo=UTC)
    simulation = simulate(
        policy, before_first_slot, datetime(2020, 4, 10, tzinfo=UTC), existing=[old]
    )
    # due since 2020-01-01, it is the only good backup until the first slot (2020-04-01 20:00)
    assert "20190101T000000" in simulation.kept_at(datetime(2020, 4, 1, 19, tzinfo=UTC))
    assert "20190101T000000" not in simulation.kept_at(datetime(2020, 4, 1, 21, tzinfo=UTC))


def test_an_incremental_rule_builds_weekly_chains_and_keeps_a_chain_while_it_is_needed() -> None:
    policy = default_policy_template()
    rule = policy["policyRules"][0]
    rule["backupParameters"]["backupType"] = "Incremental"
    rule["trigger"]["schedule"]["repeatingTimeIntervals"] = ["R/2026-01-01T22:00:00+00:00/P1D"]
    policy["policyRules"][1]["lifecycles"][0]["deleteAfter"]["duration"] = "P3D"
    start = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday
    simulation = simulate(parse_policy(json.dumps(policy)), start, start + timedelta(days=60))
    slots = [start.replace(hour=22) + timedelta(days=n) for n in range(60)]
    # a chain starts with the first slot of each ISO week (and the very first backup)
    assert [(e.at, e.backup_type) for e in simulation.backups()] == [
        (s, BackupType.FULL if s.weekday() == 0 or s == slots[0] else BackupType.INCREMENTAL)
        for s in slots
    ]
    week = {s: s.isocalendar()[:2] for s in slots}
    for n in range(60):
        now = start + timedelta(days=n, hours=23, minutes=59)
        taken = [s for s in slots if s <= now]
        # a backup stays while it or a later backup of its chain (its week) is within P3D
        expected = {
            s.strftime("%Y%m%dT%H%M%S")
            for s in taken
            if any(week[t] == week[s] and t >= s and t + timedelta(days=3) > now for t in taken)
        }
        assert set(simulation.kept_at(now)) == expected, now
    # the first chain (Thu..Sun) goes at once, when its newest member expires
    first_week = {s.strftime("%Y%m%dT%H%M%S") for s in slots[:4]}
    gone = {
        e.at for e in simulation.events if e.kind is EventKind.DELETE and e.backup_id in first_week
    }
    assert gone == {slots[3] + timedelta(days=3)}
