"""Which tag a backup gets: the matching tag with the lowest taggingPriority, else Default.

Criteria are read in the schedule's time zone. Inside one criteria object the fields are
ANDed and the values of a field ORed; a tag's list of criteria objects is ORed. The
absolute markers look at the instance's earlier successful backups: FirstOfDay/Week/Month/
Year is the first one in that local day, ISO week (Monday to Sunday), month or year.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from core.errors import InputError
from core.protection.durations import month_length
from core.protection.policy import (
    DAYS_OF_WEEK,
    MONTHS,
    WEEKS_OF_MONTH,
    AbsoluteMarker,
    BackupPolicy,
    Criteria,
    ScheduleTrigger,
    TaggingCriteria,
)
from core.protection.zones import get_zone, require_aware, wall_time

_FOURTH_WEEK_END = 28
_PERIOD: dict[AbsoluteMarker, Callable[[date], tuple[int, ...]]] = {
    AbsoluteMarker.FIRST_OF_DAY: lambda d: (d.year, d.month, d.day),
    AbsoluteMarker.FIRST_OF_WEEK: lambda d: tuple(d.isocalendar())[:2],
    AbsoluteMarker.FIRST_OF_MONTH: lambda d: (d.year, d.month),
    AbsoluteMarker.FIRST_OF_YEAR: lambda d: (d.year,),
}


@dataclass(frozen=True)
class Moment:
    """A backup time seen in the schedule's zone, with the instance's earlier local dates."""

    local: datetime
    earlier: tuple[date, ...]

    def first_of(self, marker: AbsoluteMarker) -> bool:
        if marker is AbsoluteMarker.ALL_BACKUP:
            return True
        key = _PERIOD[marker]
        mine = key(self.local.date())
        return all(key(day) != mine for day in self.earlier)


def choose_tag(
    tags: Sequence[TaggingCriteria], taken_at: datetime, earlier: Iterable[datetime], zone: tzinfo
) -> TaggingCriteria:
    """The tag for a backup taken at `taken_at`, given earlier successful backups' times."""
    taken_at = require_aware(taken_at, "taken_at")
    moment = Moment(
        wall_time(taken_at, zone),
        tuple(wall_time(t, zone).date() for t in earlier if require_aware(t) < taken_at),
    )
    ordered = sorted(tags, key=lambda t: t.tagging_priority)
    for tag in ordered:
        if not tag.is_default and any(matches(c, moment, zone) for c in tag.criteria):
            return tag
    for tag in ordered:
        if tag.is_default:
            return tag
    raise ValueError("tagging criteria without a default tag (parse_policy refuses those)")


def tag_for_backup(
    policy: BackupPolicy, taken_at: datetime, earlier: Iterable[datetime], rule: str | None = None
) -> str:
    """The tag name a scheduled backup of `rule` (the first backup rule by default) gets."""
    backup_rule = policy.backup_rule(rule)
    trigger = backup_rule.trigger
    if not isinstance(trigger, ScheduleTrigger):
        return trigger.tag_info.tag_name
    zone = get_zone(trigger.schedule.time_zone)
    return choose_tag(trigger.tagging_criteria, taken_at, earlier, zone).tag_name


def matches(criteria: Criteria, moment: Moment, zone: tzinfo) -> bool:
    """True when every field the criteria set holds for this backup."""
    day = moment.local.date()
    checks = (
        not criteria.absolute_criteria
        or any(moment.first_of(m) for m in criteria.absolute_criteria),
        not criteria.days_of_the_week
        or DAYS_OF_WEEK[day.isoweekday() % 7] in criteria.days_of_the_week,
        not criteria.months_of_year or MONTHS[day.month - 1] in criteria.months_of_year,
        not criteria.weeks_of_the_month or week_of_month(day) & set(criteria.weeks_of_the_month),
        not criteria.days_of_month
        or any(
            (d.is_last and day.day == month_length(day.year, day.month)) or d.date == day.day
            for d in criteria.days_of_month
        ),
        not criteria.schedule_times or _at_time(moment.local, criteria.schedule_times, zone),
    )
    return all(checks)


def week_of_month(day: date) -> set[str]:
    """The weeksOfTheMonth names a day belongs to: days 1-7 First ... 22-28 Fourth; Last is
    the month's last seven days (so the 25th of February can be both Fourth and Last)."""
    names = set()
    if day.day <= _FOURTH_WEEK_END:
        names.add(WEEKS_OF_MONTH[(day.day - 1) // 7])
    if day.day > month_length(day.year, day.month) - 7:
        names.add("Last")
    return names


def _at_time(local: datetime, times: Sequence[str], zone: tzinfo) -> bool:
    for text in times:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            continue
        if when.tzinfo is not None:
            when = wall_time(when, zone)
        if (when.hour, when.minute) == (local.hour, local.minute):
            return True
    return False


def adhoc_tag(policy: BackupPolicy, rule_name: str) -> str:
    """The tag of an on-demand backup (`adhoc-backup --rule-name R`).

    The seed passes a retention rule's name (Monthly), so the backup is kept as that rule
    says; the REST API passes a backup rule's name, whose default tag then applies.
    """
    for retention in policy.retention_rules:
        if retention.name == rule_name:
            return retention.name
    for rule in policy.backup_rules:
        if rule.name == rule_name:
            trigger = rule.trigger
            if not isinstance(trigger, ScheduleTrigger):
                return trigger.tag_info.tag_name
            return next(t.tag_name for t in trigger.tagging_criteria if t.is_default)
    names = [r.name for r in policy.policy_rules]
    raise InputError(f"--rule-name {rule_name!r}: the policy's rules are {', '.join(names)}")
