"""Policies: the seed's JSON loads unchanged, is written back stably; bad input names its path."""

from __future__ import annotations

import json

import pytest

from core.errors import ExitCode, InputError
from core.protection.durations import Duration, parse_duration
from core.protection.policy import (
    AbsoluteMarker,
    BackupType,
    CopyOption,
    DataStoreType,
    RetentionRule,
    dump_policy,
)
from core.protection.policy_read import parse_input_policy, parse_policy
from tests.core.protection.policies import (
    DELETE,
    edited_policy,
    osspol5_text,
    template_text,
    with_change,
)


def test_the_default_template_is_written_back_byte_for_byte() -> None:
    text = template_text()
    policy = parse_policy(text)
    assert dump_policy(policy) == text
    rule = policy.backup_rule()
    assert rule.name == "BackupWeekly"
    assert rule.backup_type is BackupType.FULL
    assert rule.data_store is DataStoreType.VAULT
    assert policy.retention_rule("Default").lifecycles[0].delete_after == Duration(months=3)


def test_the_osspol5_show_output_loads_with_its_name_tags_and_rules() -> None:
    policy = parse_policy(osspol5_text())
    assert policy.name == "osspol5"
    trigger = policy.backup_rule().trigger
    assert trigger.schedule.repeating_time_intervals == (  # type: ignore[union-attr]
        "R/2020-04-04T20:00:00+00:00/P1W",
        "R/2020-04-01T20:00:00+00:00/P1W",
    )
    monthly, default = policy.tags()
    assert (monthly.tag_name, monthly.tagging_priority, default.tag_name) == (
        "Monthly",
        15,
        "Default",
    )
    assert monthly.criteria[0].absolute_criteria == (AbsoluteMarker.FIRST_OF_MONTH,)
    assert policy.retention_rule("Monthly").lifecycles[0].delete_after == Duration(years=10)
    assert policy.retention_rule("Default").lifecycles[0].delete_after == Duration(years=1)
    # a tag with no rule of its own falls back to the default rule
    assert policy.retention_rule("Weekly").name == "Default"


def test_writing_back_is_a_fixed_point() -> None:
    for text in (osspol5_text(), json.dumps(edited_policy())):
        once = dump_policy(parse_policy(text))
        assert dump_policy(parse_policy(once)) == once
        assert parse_policy(once) == parse_policy(text)


def test_the_cli_helpers_shapes_load_and_are_written_as_arrays() -> None:
    policy = parse_policy(json.dumps(edited_policy()))
    monthly = policy.retention_rule("Monthly")
    assert isinstance(monthly, RetentionRule)
    vault, archive = monthly.lifecycles
    assert vault.copy_settings[0].data_store is DataStoreType.ARCHIVE
    assert vault.copy_settings[0].copy_after is CopyOption.ON_EXPIRY
    assert archive.source_data_store is DataStoreType.ARCHIVE
    assert archive.copy_settings == ()
    written = json.loads(dump_policy(policy))
    lifecycles = written["policyRules"][2]["lifecycles"]
    assert isinstance(lifecycles[0]["targetDataStoreCopySettings"], list)
    assert lifecycles[1]["targetDataStoreCopySettings"] == []


def test_generic_criteria_in_the_cli_snake_case_are_read() -> None:
    document = edited_policy()
    document["policyRules"][0]["trigger"]["taggingCriteria"][1]["criteria"] = [
        {
            "object_type": "ScheduleBasedBackupCriteria",
            "days_of_month": [{"date": 5, "is_last": False}, {"is_last": True}],
            "days_of_the_week": ["Sunday", "Friday"],
            "months_of_year": None,
            "weeks_of_the_month": None,
        }
    ]
    criteria = parse_policy(json.dumps(document)).tags()[0].criteria[0]
    assert criteria.days_of_the_week == ("Sunday", "Friday")
    assert [(d.date, d.is_last) for d in criteria.days_of_month] == [(5, False), (None, True)]


BAD = [
    (
        "policyRules.1.lifecycles.0.deleteAfter.duration",
        "P3X",
        "$.policyRules[1].lifecycles[0].deleteAfter.duration",
        "not an ISO 8601 duration",
    ),
    (
        "policyRules.1.objectType",
        "AzureRetentionRul",
        "$.policyRules[1].objectType",
        "unknown objectType",
    ),
    (
        "policyRules.0.trigger.schedule.repeatingTimeIntervals.0",
        "2021-08-15T06:30:00+00:00/P1W",
        "$.policyRules[0].trigger.schedule.repeatingTimeIntervals[0]",
        "no repetition",
    ),
    (
        "policyRules.0.trigger.schedule.timeZone",
        "Europe/Atlantis",
        "$.policyRules[0].trigger.schedule.timeZone",
        "unknown time zone",
    ),
    (
        "policyRules.0.backupParameters.backupType",
        "Discrete",
        "$.policyRules[0].backupParameters.backupType",
        "unknown value",
    ),
    ("policyRules.1.lifecycle", [], "$.policyRules[1].lifecycle", "unknown key"),
    ("policyRules.0.trigger.taggingCriteria.0.taggingPriority", "99", "taggingPriority", "integer"),
]


@pytest.mark.parametrize(("path", "value", "where", "problem"), BAD)
def test_bad_input_is_exit_3_with_the_json_path(
    path: str, value: object, where: str, problem: str
) -> None:
    document = json.loads(template_text())
    with pytest.raises(InputError) as caught:
        parse_policy(with_change(document, path, value))
    assert caught.value.exit_code is ExitCode.INPUT
    assert where in str(caught.value)
    assert problem in str(caught.value)


def test_a_tag_without_a_retention_rule_and_the_reverse_are_refused() -> None:
    document = edited_policy()
    no_rule = with_change(document, "policyRules.2.name", "Yearly")
    with pytest.raises(InputError, match=r"\$\.policyRules: tag 'Monthly' .* no retention rule"):
        parse_policy(no_rule)
    document["policyRules"][0]["trigger"]["taggingCriteria"].pop()
    with pytest.raises(
        InputError, match=r"\$\.policyRules\[2\]: retention rule 'Monthly' has no tag"
    ):
        parse_policy(json.dumps(document))


def test_the_default_tag_and_default_rule_are_required() -> None:
    document = json.loads(template_text())
    without = with_change(document, "policyRules.0.trigger.taggingCriteria.0.isDefault", False)
    with pytest.raises(InputError, match="is not the default and has no criteria"):
        parse_policy(without)
    without_rule = with_change(document, "policyRules.1.isDefault", False)
    with pytest.raises(InputError, match="exactly one retention rule must be the default"):
        parse_policy(without_rule)


def test_not_json_and_a_missing_object_type_are_input_errors() -> None:
    with pytest.raises(InputError, match="line 1 column"):
        parse_policy("{not json")
    document = json.loads(template_text())
    with pytest.raises(InputError, match=r"\$\.objectType: missing"):
        parse_policy(with_change(document, "objectType", DELETE))


def _lifecycles(*shapes: str) -> list[dict[str, object]]:
    """The Monthly rule's lifecycles by shape: vault-to-archive, archive, vault, custom..."""
    vault_to_archive, on_archive = edited_policy()["policyRules"][2]["lifecycles"]
    vault = {**vault_to_archive, "targetDataStoreCopySettings": None}
    custom = json.loads(json.dumps(vault_to_archive))
    custom["targetDataStoreCopySettings"]["copyAfter"] = {"objectType": "CustomCopyOption"}
    vault_1m = {**vault, "deleteAfter": {"objectType": "AbsoluteDeleteOption", "duration": "P1M"}}
    known = {"to-archive": vault_to_archive, "archive": on_archive, "vault": vault}
    known |= {"custom-no-duration": custom, "vault-1m": vault_1m}
    return [known[shape] for shape in shapes]


@pytest.mark.parametrize(
    ("shapes", "where", "problem"),
    [
        (("vault", "vault-1m"), "lifecycles[1]", "a second VaultStore lifecycle"),
        (("to-archive", "archive", "archive"), "lifecycles[2]", "a second ArchiveStore lifecycle"),
        (("vault", "archive"), "lifecycles[1]", "this ArchiveStore lifecycle can never apply"),
        (
            ("custom-no-duration", "archive"),
            "lifecycles[0].targetDataStoreCopySettings.copyAfter.duration",
            "CustomCopyOption needs a duration",
        ),
    ],
)
def test_lifecycles_that_contradict_or_can_never_apply_are_refused_in_a_policy_given(
    shapes: tuple[str, ...], where: str, problem: str
) -> None:
    text = with_change(edited_policy(), "policyRules.2.lifecycles", _lifecycles(*shapes))
    parse_policy(text)  # a policy already stored is read as it is: its instance keeps going
    with pytest.raises(InputError) as caught:
        parse_input_policy(text)
    assert f"$.policyRules[2].{where}" in str(caught.value)
    assert problem in str(caught.value)


def test_a_custom_copy_with_its_duration_and_a_copy_as_one_object_are_accepted() -> None:
    custom, on_archive = _lifecycles("custom-no-duration", "archive")
    custom["targetDataStoreCopySettings"]["copyAfter"]["duration"] = "P7D"  # type: ignore[index]
    text = with_change(edited_policy(), "policyRules.2.lifecycles", [custom, on_archive])
    rule = parse_input_policy(text).retention_rule("Monthly")
    assert rule.lifecycles[0].copy_settings[0].duration == parse_duration("P7D")
    parse_input_policy(json.dumps(edited_policy()))


def test_a_second_backup_rule_and_a_backup_rule_off_the_vault_are_refused_in_a_policy_given() -> (
    None
):
    # both were accepted and ignored: only the first backup rule ever ran, and a backup rule
    # to ArchiveStore took its backups to the vault like any other
    document = edited_policy()
    second = json.loads(json.dumps(document["policyRules"][0]))
    second["name"] = "BackupHourly"
    second["backupParameters"]["backupType"] = "Logical"
    second["trigger"]["schedule"]["repeatingTimeIntervals"] = ["R/2026-12-01T00:00:00Z/PT4H"]
    document["policyRules"].append(second)
    text = json.dumps(document)
    parse_policy(text)  # a stored one is read as it is
    with pytest.raises(InputError) as caught:
        parse_input_policy(text)
    assert "$.policyRules[3]: a second AzureBackupRule (the first is $.policyRules[0])" in str(
        caught.value
    )
    text = with_change(edited_policy(), "policyRules.0.dataStore.dataStoreType", "ArchiveStore")
    with pytest.raises(InputError) as caught:
        parse_input_policy(text)
    assert "$.policyRules[0].dataStore.dataStoreType: a backup rule writes to VaultStore" in str(
        caught.value
    )
