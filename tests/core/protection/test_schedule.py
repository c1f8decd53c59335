"""Schedules: weekly slots, DST days in Europe/Berlin, month ends, leap years, catch-up, cron."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from core.errors import InputError
from core.protection.durations import Duration, add_months, parse_duration
from core.protection.schedule import compile_schedule, describe_period

BERLIN = "Europe/Berlin"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_durations_parse_and_print_back() -> None:
    assert parse_duration("P3M") == Duration(months=3)
    assert parse_duration("P1Y2M10DT2H30M") == Duration(1, 2, 0, 10, 2, 30)
    assert parse_duration("P2W1D") == Duration(weeks=2, days=1)
    assert str(parse_duration("PT15M")) == "PT15M"
    for bad in ("P", "PT", "3M", "P1.5D", "P1H"):
        with pytest.raises(InputError, match="not an ISO 8601 duration"):
            parse_duration(bad)


def test_months_clamp_to_the_month_end_and_leap_days() -> None:
    assert add_months(datetime(2026, 1, 31), 1) == datetime(2026, 2, 28)
    assert add_months(datetime(2024, 1, 31), 1) == datetime(2024, 2, 29)
    assert Duration(years=1).add_to(datetime(2024, 2, 29)) == datetime(2025, 2, 28)


def test_the_osspol5_weekly_slots() -> None:
    schedule = compile_schedule(
        ["R/2020-04-04T20:00:00+00:00/P1W", "R/2020-04-01T20:00:00+00:00/P1W"], "UTC"
    )
    assert schedule.next_after(utc(2020, 4, 5)) == utc(2020, 4, 8, 20)
    april = schedule.occurrences(utc(2020, 4, 1), utc(2020, 5, 1))
    assert [t.day for t in april] == [1, 4, 8, 11, 15, 18, 22, 25, 29]
    assert all(t.weekday() in (2, 5) and t.hour == 20 for t in april)  # Wednesdays, Saturdays
    assert schedule.next_after(utc(2019, 1, 1)) == utc(2020, 4, 1, 20)
    far = schedule.next_after(utc(2031, 6, 1))
    assert far is not None and far.weekday() in (2, 5) and far - utc(2031, 6, 1) < timedelta(days=4)


def test_a_daily_0230_berlin_schedule_runs_once_on_both_dst_days() -> None:
    schedule = compile_schedule(["R/2026-03-01T02:30:00/P1D"], BERLIN)
    spring = schedule.occurrences(utc(2026, 3, 27), utc(2026, 3, 31))
    # 02:30 CET = 01:30Z; on the 29th 02:30 does not exist: it runs when the gap ends, 03:00
    # CEST = 01:00Z; from then on 02:30 CEST = 00:30Z.
    assert spring == [
        utc(2026, 3, 27, 1, 30),
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1),
        utc(2026, 3, 30, 0, 30),
    ]
    autumn = schedule.occurrences(utc(2026, 10, 24), utc(2026, 10, 27))
    # 02:30 happens twice on the 25th: it runs once, at the first (CEST, 00:30Z).
    assert autumn == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_a_start_with_an_offset_is_converted_to_the_zone_s_wall_time() -> None:
    schedule = compile_schedule(["R/2026-03-01T01:30:00+00:00/P1D"], BERLIN)  # 02:30 CET
    assert schedule.next_after(utc(2026, 4, 1, 12)) == utc(2026, 4, 2, 0, 30)  # 02:30 CEST


def test_a_period_of_minutes_repeats_in_elapsed_time_across_dst() -> None:
    schedule = compile_schedule(["R/2026-10-24T00:00:00/PT15M"], BERLIN)
    # the local day of the 25th lasts 25 hours: 100 slots, none twice
    day = schedule.occurrences(utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert len(day) == 100 == len(set(day))
    assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(day))


def test_monthly_slots_on_the_31st_and_a_yearly_slot_on_a_leap_day() -> None:
    monthly = compile_schedule(["R/2026-01-31T12:00:00+00:00/P1M"], "UTC")
    slots = monthly.occurrences(utc(2026, 1, 1), utc(2026, 6, 1))
    assert [t.date().isoformat() for t in slots] == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
    ]
    yearly = compile_schedule(["R/2024-02-29T00:00:00+00:00/P1Y"], "UTC")
    assert [t.date().isoformat() for t in yearly.occurrences(utc(2024, 1, 1), utc(2029, 1, 1))] == [
        "2024-02-29",
        "2025-02-28",
        "2026-02-28",
        "2027-02-28",
        "2028-02-29",
    ]


def test_a_bounded_interval_ends() -> None:
    schedule = compile_schedule(["R3/2026-01-01T00:00:00Z/P1D"], None)
    assert schedule.occurrences(utc(2025, 1, 1), utc(2027, 1, 1)) == [
        utc(2026, 1, d) for d in (1, 2, 3)
    ]
    assert schedule.next_after(utc(2026, 1, 3)) is None
    assert schedule.last_at_or_before(utc(2030, 1, 1)) == utc(2026, 1, 3)


def test_missed_slots_give_one_catch_up_not_a_storm() -> None:
    schedule = compile_schedule(["R/2026-01-01T00:00:00+00:00/PT1H"], "UTC")
    last_run = utc(2026, 1, 5, 3)
    now = utc(2026, 1, 5, 9, 20)  # six slots missed
    assert schedule.due(last_run, now) == utc(2026, 1, 5, 9)
    assert schedule.due(utc(2026, 1, 5, 9), now) is None  # ran it: nothing more until 10:00
    assert schedule.due(utc(2026, 1, 5, 9), utc(2026, 1, 5, 10)) == utc(2026, 1, 5, 10)


@pytest.mark.parametrize(
    ("intervals", "zone", "problem"),
    [
        (["R/2026-01-01T00:00:00Z/PT0S"], None, "period of .* is zero"),
        (["R0/2026-01-01T00:00:00Z/P1D"], None, "repeats zero times"),
        (["R/2026-01-01/P1D"], None, "needs a date and a time"),
        (["R/P1D/2026-01-01T00:00:00Z"], None, "the start 'P1D' needs a date and a time"),
        (["R/2026-13-01T00:00:00Z/P1D"], None, "not an ISO 8601 date-time"),
        (["R/2026-01-01T00:00:00Z/P1D"], "Mars/Olympus", "unknown time zone"),
        ([], None, "at least one interval"),
        (["cron:0 0 31 2 *"], None, "never fires"),
        (["cron:61 * * * *"], None, r"minute\)"),
        (["cron:* * *"], None, "five fields"),
    ],
)
def test_bad_schedules_are_input_errors(
    intervals: list[str], zone: str | None, problem: str
) -> None:
    with pytest.raises(InputError, match=problem):
        compile_schedule(intervals, zone, "$.schedule")


def test_cron_at_a_fixed_hour_follows_debian_cron_across_dst() -> None:
    schedule = compile_schedule(["cron:30 2 * * *"], BERLIN)
    assert schedule.occurrences(utc(2026, 3, 28), utc(2026, 3, 31)) == [
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1),
        utc(2026, 3, 30, 0, 30),
    ]
    assert schedule.occurrences(utc(2026, 10, 25), utc(2026, 10, 26)) == [utc(2026, 10, 25, 0, 30)]


def test_cron_with_any_hour_follows_the_clock_in_the_repeated_hour() -> None:
    schedule = compile_schedule(["cron:*/30 * * * *"], BERLIN)
    slots = schedule.occurrences(utc(2026, 10, 24, 23, 50), utc(2026, 10, 25, 2, 10))
    assert slots == [utc(2026, 10, 25, h, m) for h, m in ((0, 0), (0, 30), (1, 0), (1, 30), (2, 0))]


def test_cron_fields_names_and_day_rules() -> None:
    weekdays = compile_schedule(["cron:0 22 * * sun,wed,FRI"], "UTC")
    assert [t.weekday() for t in weekdays.occurrences(utc(2026, 6, 1), utc(2026, 6, 8))] == [
        2,
        4,
        6,
    ]
    either = compile_schedule(["cron:0 0 1 * mon"], "UTC")  # the 1st OR any Monday (Vixie)
    days = [t.day for t in either.occurrences(utc(2026, 6, 1), utc(2026, 7, 2))]
    assert days == [1, 8, 15, 22, 29, 1]
    assert compile_schedule(["cron:@monthly"], "UTC").next_after(utc(2026, 1, 31)) == utc(
        2026, 2, 1
    )
    stepped = compile_schedule(["cron:0 8-18/5 * jan-feb *"], "UTC")
    assert [t.hour for t in stepped.occurrences(utc(2026, 1, 1), utc(2026, 1, 2))] == [8, 13, 18]
    assert stepped.next_after(utc(2026, 3, 1)) == utc(2027, 1, 1, 8)


def test_periods_in_plain_words() -> None:
    assert describe_period(Duration(weeks=1)) == "every week"
    assert describe_period(Duration(minutes=15)) == "every 15 minutes"
