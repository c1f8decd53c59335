"""The seed's editing helpers build the policy the seed describes; plain-words descriptions."""

from __future__ import annotations

import json

import pytest

from core.errors import InputError
from core.protection.describe import describe_policy
from core.protection.editing import (
    create_absolute_criteria,
    create_generic_criteria,
    create_lifecycle,
    create_schedule,
    set_retention_rule,
    set_tag,
    set_trigger,
)
from core.protection.policy_read import parse_policy
from tests.core.protection.policies import edited_policy, osspol5_text, template_text


def test_the_seed_s_helper_sequence_gives_the_seed_s_policy() -> None:
    schedule = create_schedule(
        "Weekly", 1, ["2021-08-15T22:00:00", "2021-08-18T22:00:00", "2021-08-20T22:00:00"]
    )
    assert schedule == [
        "R/2021-08-15T22:00:00+00:00/P1W",
        "R/2021-08-18T22:00:00+00:00/P1W",
        "R/2021-08-20T22:00:00+00:00/P1W",
    ]
    policy = set_trigger(json.loads(template_text()), schedule)
    to_archive = create_lifecycle(6, "Months", "VaultStore", "ArchiveStore", "CopyOnExpiryOption")
    on_archive = create_lifecycle(24, "Months", "ArchiveStore")
    policy = set_retention_rule(policy, "Monthly", [to_archive, on_archive])
    policy = set_tag(policy, "Monthly", [create_absolute_criteria("FirstOfMonth")])
    assert parse_policy(json.dumps(policy)) == parse_policy(json.dumps(edited_policy()))


def test_helpers_edit_existing_rules_and_tags_in_place() -> None:
    policy = json.loads(template_text())
    policy = set_retention_rule(policy, "Default", [create_lifecycle(30, "Days", "VaultStore")])
    generic = create_generic_criteria(
        days_of_week=["Sunday", "Friday"], days_of_month=["5", "Last"]
    )
    policy = set_retention_rule(policy, "Weekly", [create_lifecycle(8, "Weeks", "VaultStore")])
    policy = set_tag(policy, "Weekly", [generic])
    policy = set_tag(policy, "Weekly", [create_absolute_criteria("FirstOfWeek")])
    parsed = parse_policy(json.dumps(set_trigger(policy, ["R/2026-01-01T00:00:00+00:00/P1D"])))
    assert parsed.backup_rule().name == "BackupDaily"
    assert len(parsed.retention_rules) == 2
    assert describe_policy(parsed) == (
        "daily at 00:00 UTC; first of week kept 8 weeks; other backups kept 30 days"
    )


def test_new_intervals_are_read_in_the_policy_s_zone_and_a_custom_copy_takes_a_duration() -> None:
    policy = _template()
    policy["policyRules"][0]["trigger"]["schedule"]["timeZone"] = "Europe/Atlantis"  # type: ignore[index]
    with pytest.raises(InputError, match=r"the policy's schedule\.timeZone: unknown time zone"):
        set_trigger(policy, [_WEEKLY])
    assert set_trigger(policy, [_WEEKLY], "Europe/Berlin")  # --time-zone replaces it
    lifecycle = create_lifecycle(
        6, "Months", "VaultStore", "ArchiveStore", "CustomCopyOption", "P1M"
    )
    copy_after = lifecycle["targetDataStoreCopySettings"][0]["copyAfter"]
    assert copy_after == {"duration": "P1M", "objectType": "CustomCopyOption"}


_BAD_HOUR = "R/2026-12-06T25:00:00+00:00/P1W"
_WEEKLY = "R/2026-12-06T22:00:00+00:00/P1W"


def _template() -> dict[str, object]:
    return json.loads(template_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda: create_schedule("Monthly", 1, ["2026-01-01T00:00:00"]), "--interval-type"),
        (lambda: create_schedule("Weekly", 0, ["2026-01-01T00:00:00"]), "Weekly 1 only"),
        # the counts az's create-schedule allows, as Azure does
        (lambda: create_schedule("Weekly", 2, ["2026-01-01T00:00:00"]), "Weekly 1 only"),
        (lambda: create_schedule("Daily", 3, ["2026-01-01T00:00:00"]), "Daily 1 only"),
        (lambda: create_schedule("Hourly", 5, ["2026-01-01T00:00:00"]), "Hourly 4 or 6 or 8"),
        (lambda: set_trigger(_template(), ["R/2026-01-01T00:00:00Z/PT1S"]), "shorter than a"),
        (lambda: create_lifecycle(6, "Fortnights", "VaultStore"), "Fortnights"),
        (lambda: create_lifecycle(6, "Months", "OperationalStore"), "--source-datastore"),
        (lambda: create_lifecycle(6, "Months", "VaultStore", "ArchiveStore"), "go together"),
        (lambda: create_absolute_criteria("FirstOfDecade"), "--absolute-criteria"),
        (lambda: create_generic_criteria(days_of_week=["Caturday"]), "Caturday"),
        (lambda: create_generic_criteria(), "at least one"),
        (lambda: set_tag(json.loads(template_text()), "Hourly", []), "no standard priority"),
        (
            lambda: set_tag(_template(), "Weekly", [create_absolute_criteria("FirstOfWeek")], 99),
            "--priority 99: tag 'Default' has taggingPriority 99 already",
        ),
        # what policy create refuses, refused by the helper naming its flag
        (lambda: set_trigger(_template(), [_BAD_HOUR]), "--schedule: the start"),
        (lambda: set_trigger(_template(), ["PT15M"]), "--schedule: 'PT15M' has no repetition"),
        (lambda: set_trigger(_template(), [_WEEKLY], "Europe/Nowhere"), "--time-zone: unknown"),
        (lambda: set_trigger(_template(), ["cron:61 * * * *"]), "--schedule"),
        (lambda: create_schedule("Daily", 1, ["2026-12-06T25:00:00"]), "--schedule-days"),
        (
            lambda: create_lifecycle(6, "Months", "VaultStore", "ArchiveStore", "CustomCopyOption"),
            "--copy-after-duration",
        ),
        (
            lambda: create_lifecycle(
                6, "Months", "VaultStore", "ArchiveStore", "ImmediateCopyOption", "P1M"
            ),
            "--copy-after-duration",
        ),
    ],
)
def test_helpers_refuse_bad_input(call: object, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        call()  # type: ignore[operator]


def test_the_seed_s_policies_in_plain_words() -> None:
    assert describe_policy(parse_policy(template_text())) == (
        "weekly on Sun at 06:30 UTC; other backups kept 3 months"
    )
    assert describe_policy(parse_policy(osspol5_text())) == (
        "weekly on Wed, Sat at 20:00 UTC; first of month kept 10 years; other backups kept 1 year"
    )
    assert describe_policy(parse_policy(json.dumps(edited_policy()))) == (
        "weekly on Sun, Wed, Fri at 22:00 UTC; first of month kept 6 months then moved to "
        "archive for 24 months; other backups kept 3 months"
    )
