"""A policy in plain words, for the console and `policy show`:
"weekly on Sun, Wed, Fri at 22:00 UTC; first of month kept 6 months then moved to archive
for 24 months; other backups kept 3 months".
"""

from __future__ import annotations

from core.protection.durations import Duration
from core.protection.policy import (
    DAYS_OF_WEEK,
    AbsoluteMarker,
    BackupPolicy,
    CopyOption,
    Criteria,
    DataStoreType,
    RetentionRule,
    Schedule,
    ScheduleTrigger,
    TaggingCriteria,
)
from core.protection.schedule import RepeatingInterval, compile_schedule, describe_period

_MARKERS = {
    AbsoluteMarker.ALL_BACKUP: "every backup",
    AbsoluteMarker.FIRST_OF_DAY: "first of day",
    AbsoluteMarker.FIRST_OF_WEEK: "first of week",
    AbsoluteMarker.FIRST_OF_MONTH: "first of month",
    AbsoluteMarker.FIRST_OF_YEAR: "first of year",
}
_NAMED_PERIODS = {Duration(weeks=1): "weekly", Duration(days=1): "daily"}


def describe_policy(policy: BackupPolicy) -> str:
    """Every scheduled rule's slots, then what each tag keeps, in priority order."""
    parts: list[str] = []
    for rule in policy.backup_rules:
        if isinstance(rule.trigger, ScheduleTrigger):
            parts.append(describe_schedule(rule.trigger.schedule))
        else:
            parts.append(f"on demand, tagged {rule.trigger.tag_info.tag_name}")
    for tag in policy.tags():
        parts.append(f"{describe_tag(tag)} {describe_rule(policy.retention_rule(tag.tag_name))}")
    return "; ".join(parts)


def describe_schedule(schedule: Schedule) -> str:
    compiled = compile_schedule(schedule.repeating_time_intervals, schedule.time_zone)
    zone = schedule.time_zone or "UTC"
    intervals = [e for e in compiled.entries if isinstance(e, RepeatingInterval)]
    if len(intervals) == len(compiled.entries):
        periods = {i.period for i in intervals}
        times = {i.start.strftime("%H:%M") for i in intervals}
        if len(periods) == 1 and len(times) == 1 and (period := periods.pop()) in _NAMED_PERIODS:
            at = f"at {times.pop()} {zone}"
            if period == Duration(weeks=1):
                days = sorted({(i.start.isoweekday() % 7) for i in intervals})
                return f"weekly on {', '.join(DAYS_OF_WEEK[d][:3] for d in days)} {at}"
            return f"daily {at}"
    words = []
    for entry in compiled.entries:
        if isinstance(entry, RepeatingInterval):
            words.append(
                f"{describe_period(entry.period)} from {entry.start:%Y-%m-%d %H:%M} {zone}"
            )
        else:
            words.append(f"cron {entry.text.removeprefix('cron:')!r} in {zone}")
    return ", ".join(words)


def describe_tag(tag: TaggingCriteria) -> str:
    if tag.is_default:
        return "other backups"
    return " or ".join(_criteria_words(c) for c in tag.criteria)


def _criteria_words(criteria: Criteria) -> str:
    words = [_MARKERS[m] for m in criteria.absolute_criteria]
    if criteria.days_of_the_week:
        words.append("on " + ", ".join(d[:3] for d in criteria.days_of_the_week))
    if criteria.weeks_of_the_month:
        words.append("in the " + ", ".join(criteria.weeks_of_the_month).lower() + " week")
    if criteria.days_of_month:
        days = ["last day" if d.is_last else f"day {d.date}" for d in criteria.days_of_month]
        words.append("on " + ", ".join(days))
    if criteria.months_of_year:
        words.append("in " + ", ".join(m[:3] for m in criteria.months_of_year))
    if criteria.schedule_times:
        words.append("at " + ", ".join(criteria.schedule_times))
    return " ".join(words)


def describe_rule(rule: RetentionRule) -> str:
    vault = next((x for x in rule.lifecycles if x.source_data_store is DataStoreType.VAULT), None)
    archive = next(
        (x for x in rule.lifecycles if x.source_data_store is DataStoreType.ARCHIVE), None
    )
    text = f"kept {duration_words(vault.delete_after)}" if vault else "not kept in the vault"
    copy = vault.copy_settings[0] if vault and vault.copy_settings else None
    if archive is None:
        return text
    kept = duration_words(archive.delete_after)
    if copy is None:
        return f"{text}; kept {kept} in archive"
    if copy.copy_after is CopyOption.ON_EXPIRY:
        return f"{text} then moved to archive for {kept}"
    when = f"after {duration_words(copy.duration)}" if copy.duration else "at once"
    return f"{text}, copied to archive {when} and kept there {kept}"


def duration_words(duration: Duration) -> str:
    return duration.words()
