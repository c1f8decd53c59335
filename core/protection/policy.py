"""Azure Data Protection backup policies (`BackupPolicy`) as frozen dataclasses.

The JSON is the one `az dataprotection backup-policy` reads and prints; `parse_policy` loads
it (also the `backup-policy show` envelope and the CLI helpers' shapes: a lifecycle's copy
setting as one object, generic criteria in snake_case) and `dump_policy` writes it back as
sorted, indented JSON. Reading validates and names the JSON path of every problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.errors import InputError
from core.protection.durations import Duration
from core.protection.jsondoc import dumps


class DataStoreType(StrEnum):
    """Where a backup lives: the destination's normal tier or its archive tier."""

    OPERATIONAL = "OperationalStore"
    VAULT = "VaultStore"
    ARCHIVE = "ArchiveStore"


class AbsoluteMarker(StrEnum):
    ALL_BACKUP = "AllBackup"
    FIRST_OF_DAY = "FirstOfDay"
    FIRST_OF_WEEK = "FirstOfWeek"
    FIRST_OF_MONTH = "FirstOfMonth"
    FIRST_OF_YEAR = "FirstOfYear"


class CopyOption(StrEnum):
    ON_EXPIRY = "CopyOnExpiryOption"
    IMMEDIATE = "ImmediateCopyOption"
    CUSTOM = "CustomCopyOption"


class BackupType(StrEnum):
    """backupParameters.backupType: the kind of backup a rule takes."""

    FULL = "Full"
    INCREMENTAL = "Incremental"
    LOGICAL = "Logical"


DAYS_OF_WEEK = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
WEEKS_OF_MONTH = ("First", "Second", "Third", "Fourth", "Last")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
DEFAULT_TAG = "Default"
POSTGRES_DATASOURCE = "Microsoft.DBforPostgreSQL/servers/databases"


@dataclass(frozen=True)
class DayOfMonth:
    """A day of the month: a date (1-28 in Azure; pgvault takes up to 31) or the last day."""

    date: int | None = None
    is_last: bool = False


@dataclass(frozen=True)
class Criteria:
    """ScheduleBasedBackupCriteria: fields are ANDed, values inside one field ORed."""

    absolute_criteria: tuple[AbsoluteMarker, ...] = ()
    days_of_month: tuple[DayOfMonth, ...] = ()
    days_of_the_week: tuple[str, ...] = ()
    months_of_year: tuple[str, ...] = ()
    schedule_times: tuple[str, ...] = ()
    weeks_of_the_month: tuple[str, ...] = ()


@dataclass(frozen=True)
class TagInfo:
    tag_name: str
    #: read-only fields the service fills ("<tagName>_" and null); kept as they were read
    id: str | None = None
    etag: str | None = None


@dataclass(frozen=True)
class TaggingCriteria:
    """A tag, its priority (lowest number wins) and when a backup gets it."""

    tag_info: TagInfo
    tagging_priority: int
    is_default: bool
    criteria: tuple[Criteria, ...] = ()

    @property
    def tag_name(self) -> str:
        return self.tag_info.tag_name


@dataclass(frozen=True)
class Schedule:
    """The trigger's schedule: ISO 8601 repeating intervals (or pgvault's `cron:` form)."""

    repeating_time_intervals: tuple[str, ...]
    time_zone: str | None = None


@dataclass(frozen=True)
class ScheduleTrigger:
    """ScheduleBasedTriggerContext."""

    schedule: Schedule
    tagging_criteria: tuple[TaggingCriteria, ...]


@dataclass(frozen=True)
class AdhocTrigger:
    """AdhocBasedTriggerContext: backups taken on demand get this one tag."""

    tag_info: TagInfo


@dataclass(frozen=True)
class BackupRule:
    """AzureBackupRule: what kind of backup, where it lands, and when it is taken."""

    name: str
    backup_type: BackupType | None
    data_store: DataStoreType
    trigger: ScheduleTrigger | AdhocTrigger


@dataclass(frozen=True)
class CopySetting:
    """targetDataStoreCopySettings[]: copy to another store, when copyAfter says."""

    data_store: DataStoreType
    copy_after: CopyOption
    #: only for CustomCopyOption (the CLI helper emits none; then it copies at once)
    duration: Duration | None = None


@dataclass(frozen=True)
class Lifecycle:
    """How long a backup stays in one store, and where it is copied meanwhile."""

    source_data_store: DataStoreType
    delete_after: Duration
    copy_settings: tuple[CopySetting, ...] = ()


@dataclass(frozen=True)
class RetentionRule:
    """AzureRetentionRule: the lifecycles of the backups tagged with its name."""

    name: str
    is_default: bool
    lifecycles: tuple[Lifecycle, ...]


PolicyRule = BackupRule | RetentionRule


@dataclass(frozen=True)
class BackupPolicy:
    """A whole policy; rules keep the order they were written in."""

    datasource_types: tuple[str, ...]
    policy_rules: tuple[PolicyRule, ...]
    name: str | None = None

    @property
    def backup_rules(self) -> tuple[BackupRule, ...]:
        return tuple(r for r in self.policy_rules if isinstance(r, BackupRule))

    @property
    def retention_rules(self) -> tuple[RetentionRule, ...]:
        return tuple(r for r in self.policy_rules if isinstance(r, RetentionRule))

    def backup_rule(self, name: str | None = None) -> BackupRule:
        """The backup rule called name (the first one when name is None)."""
        for rule in self.backup_rules:
            if name is None or rule.name == name:
                return rule
        known = ", ".join(r.name for r in self.backup_rules) or "none"
        raise InputError(f"the policy has no backup rule {name!r} (it has: {known})")

    def retention_rule(self, tag: str) -> RetentionRule:
        """The retention rule for a tag: the same-named rule, else the default one."""
        for rule in self.retention_rules:
            if rule.name == tag:
                return rule
        for rule in self.retention_rules:
            if rule.is_default:
                return rule
        raise InputError(f"the policy has no retention rule for tag {tag!r} and no default rule")

    def tags(self) -> tuple[TaggingCriteria, ...]:
        """Every scheduled rule's tagging criteria, by priority (lowest number first)."""
        found = [
            tag
            for rule in self.backup_rules
            if isinstance(rule.trigger, ScheduleTrigger)
            for tag in rule.trigger.tagging_criteria
        ]
        return tuple(sorted(found, key=lambda t: (t.tagging_priority, t.tag_name)))


def dump_policy(policy: BackupPolicy) -> str:
    """The policy as sorted, indented JSON (stable bytes; `parse_policy` reads it back)."""
    return dumps(policy_to_json(policy))


def policy_to_json(policy: BackupPolicy) -> dict[str, Any]:
    document: dict[str, Any] = {
        "datasourceTypes": list(policy.datasource_types),
        "objectType": "BackupPolicy",
        "policyRules": [_rule_json(rule) for rule in policy.policy_rules],
    }
    if policy.name is not None:
        document["name"] = policy.name
    return document


def _store_json(store: DataStoreType) -> dict[str, Any]:
    return {"dataStoreType": str(store), "objectType": "DataStoreInfoBase"}


def _rule_json(rule: PolicyRule) -> dict[str, Any]:
    if isinstance(rule, RetentionRule):
        return {
            "isDefault": rule.is_default,
            "lifecycles": [_lifecycle_json(item) for item in rule.lifecycles],
            "name": rule.name,
            "objectType": "AzureRetentionRule",
        }
    document: dict[str, Any] = {
        "dataStore": _store_json(rule.data_store),
        "name": rule.name,
        "objectType": "AzureBackupRule",
        "trigger": _trigger_json(rule.trigger),
    }
    if rule.backup_type is not None:
        document["backupParameters"] = {
            "backupType": str(rule.backup_type),
            "objectType": "AzureBackupParams",
        }
    return document


def _trigger_json(trigger: ScheduleTrigger | AdhocTrigger) -> dict[str, Any]:
    if isinstance(trigger, AdhocTrigger):
        return {
            "objectType": "AdhocBasedTriggerContext",
            "taggingCriteria": {"tagInfo": _tag_info_json(trigger.tag_info)},
        }
    schedule: dict[str, Any] = {
        "repeatingTimeIntervals": list(trigger.schedule.repeating_time_intervals)
    }
    if trigger.schedule.time_zone is not None:
        schedule["timeZone"] = trigger.schedule.time_zone
    return {
        "objectType": "ScheduleBasedTriggerContext",
        "schedule": schedule,
        "taggingCriteria": [_tagging_json(tag) for tag in trigger.tagging_criteria],
    }


def _tag_info_json(info: TagInfo) -> dict[str, Any]:
    document: dict[str, Any] = {"tagName": info.tag_name}
    if info.id is not None:
        document["id"] = info.id
    if info.etag is not None:
        document["eTag"] = info.etag
    return document


def _tagging_json(tag: TaggingCriteria) -> dict[str, Any]:
    document: dict[str, Any] = {
        "isDefault": tag.is_default,
        "tagInfo": _tag_info_json(tag.tag_info),
        "taggingPriority": tag.tagging_priority,
    }
    if tag.criteria:
        document["criteria"] = [_criteria_json(item) for item in tag.criteria]
    return document


def _criteria_json(criteria: Criteria) -> dict[str, Any]:
    document: dict[str, Any] = {"objectType": "ScheduleBasedBackupCriteria"}
    lists: dict[str, tuple[str, ...]] = {
        "absoluteCriteria": tuple(str(m) for m in criteria.absolute_criteria),
        "daysOfTheWeek": criteria.days_of_the_week,
        "monthsOfYear": criteria.months_of_year,
        "scheduleTimes": criteria.schedule_times,
        "weeksOfTheMonth": criteria.weeks_of_the_month,
    }
    for key, values in lists.items():
        if values:
            document[key] = list(values)
    if criteria.days_of_month:
        document["daysOfMonth"] = [
            {"isLast": True} if day.is_last else {"date": day.date}
            for day in criteria.days_of_month
        ]
    return document


def _lifecycle_json(lifecycle: Lifecycle) -> dict[str, Any]:
    copies = []
    for setting in lifecycle.copy_settings:
        copy_after: dict[str, Any] = {"objectType": str(setting.copy_after)}
        if setting.duration is not None:
            copy_after["duration"] = str(setting.duration)
        copies.append({"copyAfter": copy_after, "dataStore": _store_json(setting.data_store)})
    return {
        "deleteAfter": {
            "duration": str(lifecycle.delete_after),
            "objectType": "AbsoluteDeleteOption",
        },
        "sourceDataStore": _store_json(lifecycle.source_data_store),
        "targetDataStoreCopySettings": copies,
    }


__all__ = [
    "DAYS_OF_WEEK",
    "DEFAULT_TAG",
    "MONTHS",
    "POSTGRES_DATASOURCE",
    "WEEKS_OF_MONTH",
    "AbsoluteMarker",
    "AdhocTrigger",
    "BackupPolicy",
    "BackupRule",
    "BackupType",
    "CopyOption",
    "CopySetting",
    "Criteria",
    "DataStoreType",
    "DayOfMonth",
    "Lifecycle",
    "PolicyRule",
    "RetentionRule",
    "Schedule",
    "ScheduleTrigger",
    "TagInfo",
    "TaggingCriteria",
    "dump_policy",
    "policy_to_json",
]
