"""The seed's policy editing helpers (`az dataprotection backup-policy trigger|retention-rule|
tag ...`) as functions over policy documents (parsed JSON), so `policy ...` commands can
print what `az` prints and the result is checked by parse_policy like any other policy.

Differences from az, on purpose: copy settings come out as a list (the spec's shape);
generic criteria in camelCase (the REST shape, not az's snake_case); `tag set` on an
existing tag replaces its criteria (az writes a stray "Criteria" key); create-schedule
keeps an offset given in the date. Its counts are az's (Daily and Weekly 1, Hourly 4, 6, 8
or 12); another period (P2W, PT15M) is given to `trigger set --schedule` directly.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from core.errors import InputError
from core.protection.durations import check_window, parse_duration
from core.protection.policy import (
    DAYS_OF_WEEK,
    DEFAULT_TAG,
    MONTHS,
    WEEKS_OF_MONTH,
    AbsoluteMarker,
    CopyOption,
    DataStoreType,
)
from core.protection.policy_read import check_criteria_files, check_lifecycle_files
from core.protection.schedule import check_given_period, parse_entry
from core.protection.zones import get_zone

#: az's tagging priorities by tag name (helpers.get_tagging_priority)
TAGGING_PRIORITY = {"Default": 99, "Daily": 25, "Weekly": 20, "Monthly": 15, "Yearly": 10}
INTERVAL_TYPES = {"Hourly": "PT{}H", "Daily": "P{}D", "Weekly": "P{}W"}
#: the --interval-count values az's create-schedule allows for each --interval-type
AZURE_COUNTS = {"Hourly": (4, 6, 8, 12), "Daily": (1,), "Weekly": (1,)}
DURATION_TYPES = ("Days", "Weeks", "Months", "Years")
Document = dict[str, Any]
_LAST_DAY = 31


def create_schedule(
    interval_type: str, interval_count: int, schedule_days: Sequence[str]
) -> list[str]:
    """`trigger create-schedule`: one `R/<day>/<period>` per schedule day (UTC if no offset)."""
    if interval_type not in INTERVAL_TYPES:
        raise InputError(f"--interval-type {interval_type!r}: expected {', '.join(INTERVAL_TYPES)}")
    if interval_count not in AZURE_COUNTS[interval_type]:
        allowed = " or ".join(str(count) for count in AZURE_COUNTS[interval_type])
        example = "R/2026-01-01T00:00:00+00:00/" + INTERVAL_TYPES[interval_type].format(
            interval_count
        )
        raise InputError(
            f"--interval-count {interval_count}: Azure allows {interval_type} {allowed} only; "
            f"for another period give the interval to trigger set --schedule (e.g. {example})"
        )
    if not schedule_days:
        raise InputError("--schedule-days: give at least one date-time")
    period = INTERVAL_TYPES[interval_type].format(interval_count)
    intervals = [f"R/{_with_offset(day)}/{period}" for day in schedule_days]
    for interval in intervals:
        check_given_period(parse_entry(interval, UTC, "--schedule-days"), "--schedule-days")
    return intervals


def _with_offset(day: str) -> str:
    if "T" not in day:
        raise InputError(f"--schedule-days {day!r}: expected YYYY-MM-DDThh:mm:ss")
    time_part = day.split("T", 1)[1]
    has_offset = time_part.endswith("Z") or "+" in time_part or "-" in time_part
    return day if has_offset else f"{day}+00:00"


def set_trigger(
    policy: Document, schedule: Sequence[str], time_zone: str | None = None
) -> Document:
    """`trigger set`: the first backup rule's schedule, renamed Backup{Hourly|Daily|Weekly}."""
    result = copy.deepcopy(policy)
    rule = _backup_rule(result)
    trigger = rule.setdefault("trigger", {"objectType": "ScheduleBasedTriggerContext"})
    _check_schedule(schedule, time_zone, trigger)
    trigger.setdefault("schedule", {})["repeatingTimeIntervals"] = list(schedule)
    if time_zone is not None:
        trigger["schedule"]["timeZone"] = time_zone
    unit = {"H": "Hourly", "D": "Daily", "W": "Weekly"}.get(schedule[0][-1:] if schedule else "")
    if unit:
        rule["name"] = f"Backup{unit}"
    return result


def _check_schedule(schedule: Sequence[str], time_zone: str | None, trigger: Document) -> None:
    """Refuse here, naming the flag, what `policy create` would refuse later."""
    if not schedule:
        raise InputError("--schedule: give at least one repeating interval")
    if time_zone is not None:
        zone = get_zone(time_zone, "--time-zone")
    else:  # the policy keeps its own zone: the new intervals are read in it
        stored = trigger.get("schedule")
        name = stored.get("timeZone") if isinstance(stored, dict) else None
        zone = get_zone(name if isinstance(name, str) else None, "the policy's schedule.timeZone")
    for text in schedule:
        check_given_period(parse_entry(text, zone, "--schedule"), "--schedule")


def create_lifecycle(
    count: int,
    duration_type: str,
    source: str,
    target: str | None = None,
    copy_option: str | None = None,
    copy_after: str | None = None,
) -> Document:
    """`retention-rule create-lifecycle`: delete after N Days/Weeks/Months/Years, maybe copy
    (CustomCopyOption after `copy_after`, an ISO 8601 duration, which az cannot give)."""
    if duration_type not in DURATION_TYPES or count < 1:
        raise InputError(
            f"retention duration {count} {duration_type}: expected a positive count of "
            f"{', '.join(DURATION_TYPES)}"
        )
    duration = f"P{count}{duration_type[0]}"
    check_window(parse_duration(duration), f"--retention-duration-count {count} ({duration})")
    lifecycle: Document = {
        "deleteAfter": {
            "duration": duration,
            "objectType": "AbsoluteDeleteOption",
        },
        "sourceDataStore": _store(source, "--source-datastore"),
        "targetDataStoreCopySettings": [],
    }
    if (target is None) != (copy_option is None):
        raise InputError("--target-datastore and --copy-option go together")
    if target is not None and copy_option is not None:
        if copy_option not in tuple(o.value for o in CopyOption):
            raise InputError(
                f"--copy-option {copy_option!r}: expected {', '.join(o.value for o in CopyOption)}"
            )
        lifecycle["targetDataStoreCopySettings"] = [
            {
                "copyAfter": _copy_after(copy_option, copy_after),
                "dataStore": _store(target, "--target-datastore"),
            }
        ]
    elif copy_after is not None:
        raise InputError("--copy-after-duration goes with --copy-option CustomCopyOption")
    return lifecycle


def _copy_after(option: str, duration: str | None) -> Document:
    """A copyAfter: only CustomCopyOption takes a duration, and it needs one."""
    if (option == CopyOption.CUSTOM.value) != (duration is not None):
        raise InputError("--copy-after-duration goes with --copy-option CustomCopyOption (only)")
    if duration is None:
        return {"objectType": option}
    check_window(parse_duration(duration, "--copy-after-duration"), "--copy-after-duration")
    return {"duration": duration, "objectType": option}


def set_retention_rule(
    policy: Document, name: str, lifecycles: Sequence[Document], files: Sequence[str] = ()
) -> Document:
    """`retention-rule set`: replace rule name's lifecycles, or append a new rule. The
    lifecycles (read from `files`) are checked as `policy create` checks them."""
    check_lifecycle_files(_named(lifecycles, files, "lifecycle"))
    result = copy.deepcopy(policy)
    for rule in _rules(result):
        if rule.get("objectType") == "AzureRetentionRule" and rule.get("name") == name:
            rule["lifecycles"] = list(lifecycles)
            return result
    _rules(result).append(
        {
            "isDefault": name == DEFAULT_TAG,
            "lifecycles": list(lifecycles),
            "name": name,
            "objectType": "AzureRetentionRule",
        }
    )
    return result


def create_absolute_criteria(marker: str) -> Document:
    """`tag create-absolute-criteria --absolute-criteria FirstOfMonth`."""
    if marker not in tuple(m.value for m in AbsoluteMarker):
        raise InputError(
            f"--absolute-criteria {marker!r}: expected {', '.join(m.value for m in AbsoluteMarker)}"
        )
    return {"absoluteCriteria": [marker], "objectType": "ScheduleBasedBackupCriteria"}


def create_generic_criteria(
    days_of_week: Sequence[str] = (),
    weeks_of_month: Sequence[str] = (),
    months_of_year: Sequence[str] = (),
    days_of_month: Sequence[str] = (),
) -> Document:
    """`tag create-generic-criteria`; a day of month is 1-31 or `Last`."""
    criteria: Document = {"objectType": "ScheduleBasedBackupCriteria"}
    for key, values, allowed in (
        ("daysOfTheWeek", days_of_week, DAYS_OF_WEEK),
        ("weeksOfTheMonth", weeks_of_month, WEEKS_OF_MONTH),
        ("monthsOfYear", months_of_year, MONTHS),
    ):
        for value in values:
            if value not in allowed:
                raise InputError(f"{key} {value!r}: expected one of {', '.join(allowed)}")
        if values:
            criteria[key] = list(values)
    if days_of_month:
        criteria["daysOfMonth"] = [_day(value) for value in days_of_month]
    if len(criteria) == 1:
        raise InputError(
            "give at least one of --days-of-week, --weeks-of-month, --months-of-year, "
            "--days-of-month"
        )
    return criteria


def _day(value: str) -> Document:
    if value.lower() == "last":
        return {"isLast": True}
    if not value.isdigit() or not 1 <= int(value) <= _LAST_DAY:
        raise InputError(f"--days-of-month {value!r}: expected 1 to 31 or Last")
    return {"date": int(value)}


def set_tag(
    policy: Document,
    name: str,
    criteria: Sequence[Any],
    priority: int | None = None,
    files: Sequence[str] = (),
) -> Document:
    """`tag set`: give tag `name` these criteria (a new tag gets az's priority for its name),
    each an object or a list of them (a file's), checked as `policy create` checks a tag's
    (`files`: where each came from)."""
    check_criteria_files(_named(criteria, files, "criteria"))
    criteria = [c for given in criteria for c in (given if isinstance(given, list) else [given])]
    result = copy.deepcopy(policy)
    tags = _backup_rule(result).setdefault("trigger", {}).setdefault("taggingCriteria", [])
    for tag in tags:
        if tag.get("tagInfo", {}).get("tagName") == name:
            tag["criteria"] = list(criteria)
            if priority is not None:
                _priority_free(tags, name, priority, f"--priority {priority}")
                tag["taggingPriority"] = priority
            return result
    given = f"--priority {priority}"
    if priority is None:
        if name not in TAGGING_PRIORITY:
            raise InputError(
                f"tag {name!r} has no standard priority ({', '.join(TAGGING_PRIORITY)}); give one"
            )
        priority = TAGGING_PRIORITY[name]
        given = f"the standard priority of tag {name!r}, {priority}"
    _priority_free(tags, name, priority, given)
    tags.append(
        {
            "criteria": list(criteria),
            "isDefault": False,
            "tagInfo": {"tagName": name},
            "taggingPriority": priority,
        }
    )
    return result


def _priority_free(tags: list[Document], name: str, priority: int, given: str) -> None:
    """Refuse a taggingPriority another tag has: `policy create` refuses two tags with one."""
    for tag in tags:
        other = tag.get("tagInfo", {}).get("tagName") if isinstance(tag, dict) else None
        if other != name and isinstance(tag, dict) and tag.get("taggingPriority") == priority:
            raise InputError(
                f"{given}: tag {other!r} has taggingPriority {priority} already "
                f"and the lowest must be unique: give tag {name!r} another one"
            )


def _named(documents: Sequence[Any], files: Sequence[str], kind: str) -> list[tuple[str, Any]]:
    """Each document with what its errors call it: its file, else its place in the list."""
    names = list(files) or [f"{kind} {index + 1}" for index in range(len(documents))]
    return [(f"{kind} file {n}" if files else n, d) for n, d in zip(names, documents, strict=True)]


def _store(value: str, flag: str) -> Document:
    allowed = (DataStoreType.VAULT.value, DataStoreType.ARCHIVE.value)
    if value not in allowed:
        raise InputError(f"{flag} {value!r}: expected {' or '.join(allowed)}")
    return {"dataStoreType": value, "objectType": "DataStoreInfoBase"}


def _rules(policy: Document) -> list[Document]:
    rules = policy.get("policyRules")
    if not isinstance(rules, list):
        raise InputError("policy $.policyRules: expected a list")
    return rules


def _backup_rule(policy: Document) -> Document:
    for rule in _rules(policy):
        if isinstance(rule, dict) and rule.get("objectType") == "AzureBackupRule":
            return rule
    raise InputError("policy $.policyRules: there is no AzureBackupRule to edit")
