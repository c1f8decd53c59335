"""Tagging: first of day/week/month/year, generic criteria, priorities, the Default fallback."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from core.errors import InputError
from core.protection.policy import (
    AbsoluteMarker,
    Criteria,
    DayOfMonth,
    TaggingCriteria,
    TagInfo,
)
from core.protection.policy_read import parse_policy
from core.protection.tagging import adhoc_tag, choose_tag, tag_for_backup, week_of_month
from tests.core.protection.policies import osspol5_text


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def tag(name: str, priority: int, *criteria: Criteria) -> TaggingCriteria:
    return TaggingCriteria(TagInfo(name), priority, False, criteria)


DEFAULT = TaggingCriteria(TagInfo("Default"), 99, True)


def absolute(marker: AbsoluteMarker) -> Criteria:
    return Criteria(absolute_criteria=(marker,))


def test_osspol5_tags_the_first_backup_of_each_month_monthly() -> None:
    policy = parse_policy(osspol5_text())
    taken: list[datetime] = []
    tags = []
    # its slots: Wednesdays and Saturdays at 20:00 UTC
    for when in (
        utc(2020, 4, 1, 20),
        utc(2020, 4, 4, 20),
        utc(2020, 4, 29, 20),
        utc(2020, 5, 2, 20),
        utc(2020, 5, 6, 20),
    ):
        tags.append(tag_for_backup(policy, when, taken))
        taken.append(when)
    assert tags == ["Monthly", "Default", "Default", "Monthly", "Default"]


def test_only_earlier_successful_backups_count() -> None:
    tags = [tag("Daily", 25, absolute(AbsoluteMarker.FIRST_OF_DAY)), DEFAULT]
    later = [utc(2026, 5, 5, 23)]
    assert choose_tag(tags, utc(2026, 5, 5, 10), later, UTC).tag_name == "Daily"
    assert choose_tag(tags, utc(2026, 5, 5, 10), [utc(2026, 5, 5, 1)], UTC).tag_name == "Default"
    assert choose_tag(tags, utc(2026, 5, 6, 0, 5), [utc(2026, 5, 5, 23)], UTC).tag_name == "Daily"


def test_the_lowest_priority_number_wins() -> None:
    tags = [
        DEFAULT,
        tag("Monthly", 15, absolute(AbsoluteMarker.FIRST_OF_MONTH)),
        tag("Yearly", 10, absolute(AbsoluteMarker.FIRST_OF_YEAR)),
        tag("Weekly", 20, absolute(AbsoluteMarker.FIRST_OF_WEEK)),
    ]
    assert choose_tag(tags, utc(2027, 1, 1, 6), [utc(2026, 12, 31, 6)], UTC).tag_name == "Yearly"
    assert choose_tag(tags, utc(2027, 2, 1, 6), [utc(2027, 1, 31, 6)], UTC).tag_name == "Monthly"
    # 2027-02-08 is a Monday: the first backup of its ISO week
    assert choose_tag(tags, utc(2027, 2, 8, 6), [utc(2027, 2, 7, 6)], UTC).tag_name == "Weekly"
    assert choose_tag(tags, utc(2027, 2, 9, 6), [utc(2027, 2, 8, 6)], UTC).tag_name == "Default"


def test_periods_are_read_in_the_schedule_s_time_zone() -> None:
    tags = [tag("Monthly", 15, absolute(AbsoluteMarker.FIRST_OF_MONTH)), DEFAULT]
    berlin = ZoneInfo("Europe/Berlin")
    # 23:30Z on Jan 31 is 00:30 on Feb 1 in Berlin: the first of February there
    assert (
        choose_tag(tags, utc(2026, 1, 31, 23, 30), [utc(2026, 1, 30, 12)], berlin).tag_name
        == "Monthly"
    )
    assert (
        choose_tag(tags, utc(2026, 1, 31, 23, 30), [utc(2026, 1, 30, 12)], UTC).tag_name
        == "Default"
    )


def test_days_of_the_week_months_and_the_last_day_of_a_month() -> None:
    tags = [
        tag("Weekend", 20, Criteria(days_of_the_week=("Sunday", "Saturday"))),
        tag(
            "MonthEnd",
            15,
            Criteria(days_of_month=(DayOfMonth(is_last=True),), months_of_year=("February",)),
        ),
        DEFAULT,
    ]
    assert choose_tag(tags, utc(2026, 6, 7, 1), [], UTC).tag_name == "Weekend"  # a Sunday
    assert choose_tag(tags, utc(2024, 2, 29, 1), [], UTC).tag_name == "MonthEnd"  # leap year
    assert choose_tag(tags, utc(2024, 2, 28, 1), [], UTC).tag_name == "Default"  # a Wednesday
    assert choose_tag(tags, utc(2023, 2, 28, 1), [], UTC).tag_name == "MonthEnd"
    assert choose_tag(tags, utc(2026, 3, 31, 1), [], UTC).tag_name == "Default"  # not February


def test_fields_are_anded_and_criteria_ored() -> None:
    first_sunday = Criteria(days_of_the_week=("Sunday",), weeks_of_the_month=("First",))
    fifteenth = Criteria(days_of_month=(DayOfMonth(15),))
    tags = [tag("Special", 15, first_sunday, fifteenth), DEFAULT]
    assert choose_tag(tags, utc(2026, 6, 7, 1), [], UTC).tag_name == "Special"  # first Sunday
    assert choose_tag(tags, utc(2026, 6, 14, 1), [], UTC).tag_name == "Default"  # second Sunday
    assert choose_tag(tags, utc(2026, 6, 15, 1), [], UTC).tag_name == "Special"  # the 15th


def test_weeks_of_the_month() -> None:
    assert week_of_month(date(2026, 2, 1)) == {"First"}
    assert week_of_month(date(2026, 2, 22)) == {"Fourth", "Last"}  # 28-day February
    assert week_of_month(date(2026, 3, 24)) == {"Fourth"}
    assert week_of_month(date(2026, 3, 29)) == {"Last"}


def test_a_backup_with_no_match_gets_the_default_and_times_can_be_required() -> None:
    tags = [tag("Evening", 15, Criteria(schedule_times=("2026-01-01T22:00:00+00:00",))), DEFAULT]
    assert choose_tag(tags, utc(2026, 6, 3, 22), [], UTC).tag_name == "Evening"
    assert choose_tag(tags, utc(2026, 6, 3, 6), [], UTC).tag_name == "Default"


def test_an_adhoc_backup_takes_the_named_rule_s_tag() -> None:
    policy = parse_policy(osspol5_text())
    assert adhoc_tag(policy, "Monthly") == "Monthly"  # the seed's adhoc-backup --rule-name
    assert adhoc_tag(policy, "BackupWeekly") == "Default"  # a backup rule: its default tag
    with pytest.raises(InputError, match="the policy's rules are BackupWeekly, Monthly, Default"):
        adhoc_tag(policy, "Yearly")
