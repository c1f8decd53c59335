"""400-day simulations of the seed's policies, checked day by day against an independent count."""

from __future__ import annotations

import calendar
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.protection.policy import BackupPolicy, BackupType, DataStoreType, ScheduleTrigger
from core.protection.policy_read import parse_policy
from core.protection.retention import Action, BackupPoint, plan_retention
from core.protection.schedule import compile_schedule
from core.protection.simulate import EventKind, backup_id_for, simulate
from core.protection.tagging import choose_tag
from core.protection.template import default_policy_template
from core.protection.zones import get_zone
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


def _every_backup_at_every_instant(policy: BackupPolicy, start: datetime, end: datetime) -> Any:
    """The plain rule simulate() indexes: plan_retention over every live backup at every
    slot and every due instant, tags from every live backup (Full rules)."""
    rule = policy.backup_rule()
    trigger = rule.trigger
    assert isinstance(trigger, ScheduleTrigger)
    zone = get_zone(trigger.schedule.time_zone)
    compiled = compile_schedule(
        trigger.schedule.repeating_time_intervals, trigger.schedule.time_zone
    )
    slots = iter(compiled.occurrences(start, end))
    points: dict[str, BackupPoint] = {}
    events: list[tuple[datetime, str, str, str]] = []
    slot, clock = next(slots, None), start
    while True:
        plan = plan_retention(policy, list(points.values()), clock)
        for step in plan.due:
            events.append((max(step.due, clock), str(step.action), step.backup_id, str(step.store)))
            point = points[step.backup_id]
            stores = set(point.stores) | ({step.target} if step.target else set())
            if step.action is not Action.COPY:
                stores.discard(step.store)
            if stores:
                points[step.backup_id] = replace(point, stores=frozenset(stores))
            else:
                del points[step.backup_id]
        due = plan.next_due
        if slot is not None and (due is None or slot <= due):
            earlier = [p.taken_at for p in points.values()]
            tag = choose_tag(trigger.tagging_criteria, slot, earlier, zone).tag_name
            point = BackupPoint(backup_id_for(slot), slot, tag, frozenset({VAULT}))
            points[point.backup_id] = point
            events.append((slot, "backup", point.backup_id, tag))
            clock, slot = slot, next(slots, None)
        elif due is not None and due < end:
            clock = due
        else:
            return sorted(events, key=lambda e: e[0])


@pytest.mark.parametrize(
    ("schedule", "zone", "default", "days"),
    [
        ("R/2026-12-01T00:00:00+00:00/PT1M", None, "PT6H", 1),  # many slots, short windows
        ("R/2026-01-01T22:00:00+00:00/P1D", None, "P10D", 400),  # monthly tags to the archive
        ("R/2026-03-01T02:30:00/PT1H", "Europe/Berlin", "P2D", 40),  # across the DST change
    ],
)
def test_simulate_decides_as_retention_over_every_backup_at_every_instant(
    schedule: str, zone: str | None, default: str, days: int
) -> None:
    document = edited_policy()  # Monthly: 6 months in the vault, then 24 in the archive
    rule = document["policyRules"][0]
    rule["trigger"]["schedule"] = {"repeatingTimeIntervals": [schedule], "timeZone": zone}
    document["policyRules"][1]["lifecycles"][0]["deleteAfter"]["duration"] = default
    policy = parse_policy(json.dumps(document))
    start = datetime.fromisoformat(schedule.split("/")[1][:10]).replace(tzinfo=UTC)
    end = start + timedelta(days=days)
    found = [
        (e.at, str(e.kind), e.backup_id, e.tag if e.kind is EventKind.BACKUP else str(e.store))
        for e in simulate(policy, start, end).events
    ]
    assert found == _every_backup_at_every_instant(policy, start, end)
    assert {e[1] for e in found} >= {"backup", "delete"}
