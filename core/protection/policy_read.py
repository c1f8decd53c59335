"""Reading a policy document: shape, values and cross-references, each error with its path.

Accepted as well as the canonical shape: the `backup-policy show` envelope (`properties`
plus `name`), a lifecycle's `targetDataStoreCopySettings` as one object or null (what the
CLI's create-lifecycle prints), and the snake_case keys of create-generic-criteria.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from core.protection.durations import check_window, parse_duration
from core.protection.jsondoc import Node, loads
from core.protection.policy import (
    DAYS_OF_WEEK,
    DEFAULT_TAG,
    MONTHS,
    WEEKS_OF_MONTH,
    AbsoluteMarker,
    AdhocTrigger,
    BackupPolicy,
    BackupRule,
    BackupType,
    CopyOption,
    CopySetting,
    Criteria,
    DataStoreType,
    DayOfMonth,
    Lifecycle,
    PolicyRule,
    RetentionRule,
    Schedule,
    ScheduleTrigger,
    TaggingCriteria,
    TagInfo,
)
from core.protection.schedule import check_given_period, compile_schedule, parse_entry
from core.protection.zones import get_zone

_LAST_DAY = 31
_ENVELOPE_KEYS = {"id", "name", "properties", "resourceGroup", "systemData", "type"}
_SNAKE = {
    "object_type": "objectType",
    "absolute_criteria": "absoluteCriteria",
    "days_of_month": "daysOfMonth",
    "days_of_the_week": "daysOfTheWeek",
    "months_of_year": "monthsOfYear",
    "schedule_times": "scheduleTimes",
    "weeks_of_the_month": "weeksOfTheMonth",
    "is_last": "isLast",
}


def parse_policy(text: str | bytes, what: str = "policy") -> BackupPolicy:
    """A policy from JSON text; InputError (exit 3) names the JSON path of any problem."""
    return read_policy(loads(text, what), what)


def parse_input_policy(text: str | bytes, what: str = "policy") -> BackupPolicy:
    """A policy an operator gives (`policy create`, `simulate`): parse_policy, and every
    lifecycle's window within durations.MAX_WINDOW_YEARS. A stored policy is read as it
    is, so an instance whose older policy has a longer one still takes its backups."""
    document = loads(text, what)
    policy = read_policy(document, what)
    root = Node(document, "$", what)
    if root.has("properties") and not root.has("objectType"):
        root = root.child("properties")
    backup_rules: list[Node] = []
    for rule in root.child("policyRules").items():
        if rule.child("objectType").value == "AzureRetentionRule":
            _check_lifecycles(list(rule.child("lifecycles").items()))
        else:
            backup_rules.append(rule)
    _check_backup_rules(backup_rules)
    for rule in backup_rules:
        _check_periods(rule.child("trigger"))
    return policy


def _check_periods(trigger: Node) -> None:
    """Each schedule entry of a policy given repeats at most once a minute."""
    if trigger.child("objectType").value != "ScheduleBasedTriggerContext":
        return
    schedule = trigger.child("schedule")
    zone = get_zone(schedule.child("timeZone").optional_text())
    for item in schedule.child("repeatingTimeIntervals").items():
        where = f"{item.what} {item.path}"
        check_given_period(parse_entry(item.text(), zone, where), where)


def _check_backup_rules(rules: list[Node]) -> None:
    """What the agent would silently ignore, refused in a policy given: a second backup
    rule (only the first runs, as Azure's PostgreSQL policies have one) and a backup rule
    whose dataStore is not VaultStore (backups are always taken to the vault)."""
    if len(rules) > 1:
        raise rules[1].fail(
            f"a second AzureBackupRule (the first is {rules[0].path}): a policy has one backup "
            "rule, and only the first would run; give each schedule its own policy and instance"
        )
    for rule in rules:
        store = rule.child("dataStore").child("dataStoreType")
        if store.value != DataStoreType.VAULT.value:
            raise store.fail(
                f"a backup rule writes to VaultStore, not {store.value}: backups reach the "
                "ArchiveStore through a retention rule's targetDataStoreCopySettings"
            )


def check_lifecycle_files(documents: Sequence[tuple[str, Any]]) -> None:
    """`retention-rule set --lifecycles FILE...`: each (name, document) checked as `policy
    create` checks a retention rule's lifecycles, one by one and together; InputError names
    the file and the JSON path in it."""
    nodes = [Node(document, "$", what) for what, document in documents]
    for node in nodes:
        _lifecycle(node)
    _check_lifecycles(nodes)


def check_criteria_files(documents: Sequence[tuple[str, Any]]) -> None:
    """`tag set --criteria FILE...`: each file's criteria (one object or a list) checked as
    `policy create` checks a tag's; InputError names the file and the JSON path in it."""
    for what, document in documents:
        root = Node(document, "$", what)
        for node in root.items() if isinstance(document, list) else [root]:
            _criteria(node)


def _check_lifecycles(lifecycles: list[Node]) -> None:
    """What read_policy reads but would silently ignore, refused in a policy given: a second
    lifecycle from one data store, a second copy, a CustomCopyOption without its duration,
    an ArchiveStore lifecycle nothing copies to ArchiveStore. (A stored one is read as is.)"""
    first: dict[str, Node] = {}
    copied = False
    archive: Node | None = None
    for lifecycle in lifecycles:
        _window(lifecycle.child("deleteAfter").child("duration"))
        source = lifecycle.child("sourceDataStore").child("dataStoreType").text()
        if source in first:
            other = first[source]  # in another file, named with it
            where = other.path if other.what == lifecycle.what else f"{other.what} {other.path}"
            raise lifecycle.fail(
                f"a second {source} lifecycle (the first is {where}): a retention rule "
                "has one lifecycle per data store, and only the first would apply"
            )
        first[source] = lifecycle
        copies = _copy_nodes(lifecycle.child("targetDataStoreCopySettings"))
        if len(copies) > 1:
            raise copies[1].fail("a second copy to ArchiveStore; a lifecycle copies once")
        for item in copies:
            after = item.child("copyAfter")
            _window(after.child("duration"))
            custom = after.child("objectType").value == CopyOption.CUSTOM.value
            if custom and after.child("duration").value is None:
                raise after.child("duration").fail(
                    "CustomCopyOption needs a duration (how long after the backup to copy "
                    "it; ImmediateCopyOption copies at once)"
                )
            copied = True
        if source == DataStoreType.ARCHIVE.value:
            archive = lifecycle
    if archive is not None and not copied:
        raise archive.fail(
            "no VaultStore lifecycle of this rule copies to ArchiveStore "
            "(targetDataStoreCopySettings), so this ArchiveStore lifecycle can never apply"
        )


def _copy_nodes(copies: Node) -> list[Node]:
    """targetDataStoreCopySettings as a list (the CLI prints one object, or null)."""
    return [copies] if isinstance(copies.value, dict) else list(copies.items())


def _window(node: Node) -> None:
    if node.value is not None:
        where = f"{node.what} {node.path}"
        check_window(parse_duration(node.text(), where), where)


def read_policy(document: Any, what: str = "policy") -> BackupPolicy:
    root = Node(document, "$", what)
    name: str | None = None
    if root.has("properties") and not root.has("objectType"):
        root.only_keys(_ENVELOPE_KEYS)
        name = root.child("name").optional_text()
        root = root.child("properties")
    root.object_type("BackupPolicy")
    root.only_keys({"datasourceTypes", "name", "objectType", "policyRules"})
    name = root.child("name").optional_text() if root.has("name") else name
    types = tuple(node.text() for node in root.child("datasourceTypes").items())
    rules = tuple(_rule(node) for node in root.child("policyRules").items())
    policy = BackupPolicy(types, rules, name)
    _check_rules(policy, root.child("policyRules"))
    return policy


def _rule(node: Node) -> PolicyRule:
    kind = node.object_type("AzureBackupRule", "AzureRetentionRule")
    if kind == "AzureRetentionRule":
        node.only_keys({"isDefault", "lifecycles", "name", "objectType"})
        lifecycles = tuple(_lifecycle(item) for item in node.child("lifecycles").items())
        if not lifecycles:
            raise node.child("lifecycles").fail("a retention rule needs at least one lifecycle")
        return RetentionRule(
            node.child("name").text(), node.child("isDefault").boolean(False), lifecycles
        )
    node.only_keys({"backupParameters", "dataStore", "name", "objectType", "trigger"})
    return BackupRule(
        node.child("name").text(),
        _backup_type(node.child("backupParameters")),
        _store(node.child("dataStore")),
        _trigger(node.child("trigger")),
    )


def _backup_type(node: Node) -> BackupType | None:
    if node.value is None:
        return None
    node.object_type("AzureBackupParams")
    node.only_keys({"backupType", "objectType"})
    field = node.child("backupType")
    return BackupType(field.choice(tuple(t.value for t in BackupType)))


def _store(node: Node) -> DataStoreType:
    node.object_type("DataStoreInfoBase")
    node.only_keys({"dataStoreType", "objectType"})
    return DataStoreType(node.child("dataStoreType").choice(tuple(s.value for s in DataStoreType)))


def _trigger(node: Node) -> ScheduleTrigger | AdhocTrigger:
    kind = node.object_type("ScheduleBasedTriggerContext", "AdhocBasedTriggerContext")
    if kind == "AdhocBasedTriggerContext":
        node.only_keys({"objectType", "taggingCriteria"})
        tagging = node.child("taggingCriteria")
        tagging.only_keys({"tagInfo"})
        return AdhocTrigger(_tag_info(tagging.child("tagInfo")))
    node.only_keys({"objectType", "schedule", "taggingCriteria"})
    schedule_node = node.child("schedule")
    schedule_node.only_keys({"repeatingTimeIntervals", "timeZone"})
    intervals = tuple(item.text() for item in schedule_node.child("repeatingTimeIntervals").items())
    zone = schedule_node.child("timeZone").optional_text()
    compile_schedule(intervals, zone, f"{node.what} {schedule_node.path}")
    tags = tuple(_tagging(item) for item in node.child("taggingCriteria").items())
    _check_tags(tags, node.child("taggingCriteria"))
    return ScheduleTrigger(Schedule(intervals, zone), tags)


def _tag_info(node: Node) -> TagInfo:
    node.only_keys({"eTag", "id", "tagName"})
    return TagInfo(
        node.child("tagName").text(),
        node.child("id").optional_text(),
        node.child("eTag").optional_text(),
    )


def _tagging(node: Node) -> TaggingCriteria:
    node.only_keys({"criteria", "isDefault", "tagInfo", "taggingPriority"})
    criteria = tuple(_criteria(item) for item in node.child("criteria").items())
    is_default = node.child("isDefault").boolean(False)
    tag = TaggingCriteria(
        _tag_info(node.child("tagInfo")),
        node.child("taggingPriority").integer(),
        is_default,
        criteria,
    )
    if not is_default and not criteria:
        raise node.child("criteria").fail(
            f"tag {tag.tag_name!r} is not the default and has no criteria"
        )
    return tag


def _criteria(node: Node) -> Criteria:
    node = Node({_SNAKE.get(k, k): v for k, v in node.obj().items()}, node.path, node.what)
    node.object_type("ScheduleBasedBackupCriteria")
    node.only_keys({"objectType", *_SNAKE.values()} - {"isLast"})
    markers = tuple(
        AbsoluteMarker(item.choice(tuple(m.value for m in AbsoluteMarker)))
        for item in node.child("absoluteCriteria").items()
    )
    criteria = Criteria(
        absolute_criteria=markers,
        days_of_month=tuple(_day(item) for item in node.child("daysOfMonth").items()),
        days_of_the_week=tuple(
            item.choice(DAYS_OF_WEEK) for item in node.child("daysOfTheWeek").items()
        ),
        months_of_year=tuple(item.choice(MONTHS) for item in node.child("monthsOfYear").items()),
        schedule_times=tuple(_time(item) for item in node.child("scheduleTimes").items()),
        weeks_of_the_month=tuple(
            item.choice(WEEKS_OF_MONTH) for item in node.child("weeksOfTheMonth").items()
        ),
    )
    if criteria == Criteria():
        raise node.fail("the criteria name no condition")
    return criteria


def _time(node: Node) -> str:
    try:
        datetime.fromisoformat(node.text())
    except ValueError:
        raise node.fail("not an ISO 8601 date-time") from None
    return node.text()


def _day(node: Node) -> DayOfMonth:
    node = Node({_SNAKE.get(k, k): v for k, v in node.obj().items()}, node.path, node.what)
    node.only_keys({"date", "isLast"})
    if node.child("isLast").boolean(False):
        return DayOfMonth(None, True)
    date = node.child("date").integer()
    if not 1 <= date <= _LAST_DAY:
        raise node.child("date").fail(f"day {date} is not between 1 and {_LAST_DAY}")
    return DayOfMonth(date, False)


def _lifecycle(node: Node) -> Lifecycle:
    node.only_keys({"deleteAfter", "sourceDataStore", "targetDataStoreCopySettings"})
    delete = node.child("deleteAfter")
    delete.object_type("AbsoluteDeleteOption")
    delete.only_keys({"duration", "objectType"})
    duration_node = delete.child("duration")
    duration = parse_duration(duration_node.text(), f"{node.what} {duration_node.path}")
    source = _store(node.child("sourceDataStore"))
    if source is DataStoreType.OPERATIONAL:
        raise node.child("sourceDataStore").fail("pgvault has no OperationalStore (use VaultStore)")
    copies = tuple(
        _copy(item, source) for item in _copy_nodes(node.child("targetDataStoreCopySettings"))
    )
    return Lifecycle(source, duration, copies)


def _copy(node: Node, source: DataStoreType) -> CopySetting:
    node.only_keys({"copyAfter", "dataStore"})
    target = _store(node.child("dataStore"))
    if target is not DataStoreType.ARCHIVE or source is DataStoreType.ARCHIVE:
        raise node.child("dataStore").fail(
            "backups can only be copied from VaultStore to ArchiveStore"
        )
    after = node.child("copyAfter")
    option = CopyOption(after.object_type(*(o.value for o in CopyOption)))
    after.only_keys({"duration", "objectType"})
    duration = None
    if after.child("duration").value is not None:
        if option is not CopyOption.CUSTOM:
            raise after.child("duration").fail(f"{option} takes no duration")
        duration = parse_duration(
            after.child("duration").text(), f"{node.what} {after.path}.duration"
        )
    return CopySetting(target, option, duration)


def _check_tags(tags: tuple[TaggingCriteria, ...], node: Node) -> None:
    names = [t.tag_name for t in tags]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise node.fail(f"tag {name!r} appears twice")
    priorities = [t.tagging_priority for t in tags]
    for index, priority in enumerate(priorities):
        if priority in priorities[:index]:
            raise node.fail(f"two tags share taggingPriority {priority}; the lowest must be unique")
    defaults = [t for t in tags if t.is_default]
    if len(defaults) != 1:
        raise node.fail(
            f"exactly one tag must be the default (isDefault: true), found {len(defaults)}"
        )


def _check_rules(policy: BackupPolicy, node: Node) -> None:
    """Names unique; every tag has its retention rule and every rule its tag."""
    names = [rule.name for rule in policy.policy_rules]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise node.fail(f"two rules are called {name!r}")
    if not policy.backup_rules:
        raise node.fail("the policy has no AzureBackupRule")
    retention = {
        rule.name: index
        for index, rule in enumerate(policy.policy_rules)
        if isinstance(rule, RetentionRule)
    }
    defaults = [rule for rule in policy.retention_rules if rule.is_default]
    if len(defaults) != 1:
        raise node.fail(f"exactly one retention rule must be the default, found {len(defaults)}")
    tagged = _tag_names(policy)
    for tag, where in tagged.items():
        if tag not in retention and tag != DEFAULT_TAG:
            raise node.fail(f"tag {tag!r} (at {where}) has no retention rule of the same name")
    for name, index in retention.items():
        rule = policy.policy_rules[index]
        if name not in tagged and not (isinstance(rule, RetentionRule) and rule.is_default):
            raise Node(rule, f"{node.path}[{index}]", node.what).fail(
                f"retention rule {name!r} has no tag of the same name in any backup rule"
            )


def _tag_names(policy: BackupPolicy) -> dict[str, str]:
    found: dict[str, str] = {}
    for rule in policy.backup_rules:
        trigger = rule.trigger
        if isinstance(trigger, ScheduleTrigger):
            infos = [tag.tag_info for tag in trigger.tagging_criteria]
        else:
            infos = [trigger.tag_info]
        for info in infos:
            found.setdefault(info.tag_name, f"rule {rule.name!r}")
    return found
