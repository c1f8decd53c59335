"""Retention: expiry after deleteAfter, moves to the archive tier, and what is never deleted."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from core.protection.policy import BackupPolicy, DataStoreType
from core.protection.policy_read import parse_policy
from core.protection.retention import Action, BackupPoint, Step, lifecycle_steps, plan_retention
from tests.core.protection.policies import edited_policy

VAULT = DataStoreType.VAULT
ARCHIVE = DataStoreType.ARCHIVE


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def policy() -> BackupPolicy:
    """Default: 3 months in the vault; Monthly: 6 months in the vault, then 24 in the archive."""
    return parse_policy(json.dumps(edited_policy()))


def point(
    backup_id: str, taken: datetime, tag: str = "Default", *stores: DataStoreType
) -> BackupPoint:
    return BackupPoint(backup_id, taken, tag, frozenset(stores or (VAULT,)))


def actions(steps: tuple[Step, ...]) -> list[tuple[str, Action, DataStoreType]]:
    return [(s.backup_id, s.action, s.store) for s in steps]


def test_a_default_backup_expires_after_three_months_calendar_exact() -> None:
    backups = [point("a", utc(2025, 11, 30, 22)), point("b", utc(2026, 2, 1, 22))]
    assert plan_retention(policy(), backups, utc(2026, 2, 28, 21, 59)).due == ()
    plan = plan_retention(policy(), backups, utc(2026, 2, 28, 22))  # Nov 30 + P3M = Feb 28
    assert actions(plan.due) == [("a", Action.DELETE, VAULT)]
    assert plan.upcoming[0].backup_id == "b" and plan.upcoming[0].due == utc(2026, 5, 1, 22)


def test_a_monthly_backup_moves_to_the_archive_then_expires_there() -> None:
    monthly = point("m", utc(2026, 1, 4, 22), "Monthly")
    newer = point("n", utc(2028, 12, 1, 22))
    steps = lifecycle_steps(policy().retention_rule("Monthly"), monthly)
    assert [(s.due, s.action, s.store, s.target) for s in steps] == [
        (utc(2026, 7, 4, 22), Action.MOVE, VAULT, ARCHIVE),
        (utc(2028, 7, 4, 22), Action.DELETE, ARCHIVE, None),
    ]
    plan = plan_retention(policy(), [monthly, newer], utc(2026, 7, 5))
    assert actions(plan.due) == [("m", Action.MOVE, VAULT)]
    archived = point("m", monthly.taken_at, "Monthly", ARCHIVE)
    assert plan_retention(policy(), [archived, newer], utc(2026, 7, 6)).due == ()
    plan = plan_retention(policy(), [archived, newer], utc(2028, 7, 5))
    assert actions(plan.due) == [("m", Action.DELETE, ARCHIVE)]


def test_a_move_that_is_also_past_its_archive_expiry_is_just_a_delete() -> None:
    monthly = point("m", utc(2026, 1, 4, 22), "Monthly")
    plan = plan_retention(policy(), [monthly, point("n", utc(2029, 1, 1))], utc(2029, 1, 2))
    assert actions(plan.due) == [("m", Action.DELETE, VAULT)]


def test_the_newest_good_backup_is_never_deleted() -> None:
    backups = [point("a", utc(2025, 1, 1)), point("b", utc(2025, 2, 1))]
    plan = plan_retention(policy(), backups, utc(2026, 1, 1))
    assert actions(plan.due) == [("a", Action.DELETE, VAULT)]
    assert [(h.step.backup_id, h.reason) for h in plan.held] == [
        ("b", "the newest good backup is never deleted")
    ]


def test_the_newest_backup_may_still_move_to_the_archive() -> None:
    plan = plan_retention(policy(), [point("m", utc(2026, 1, 4), "Monthly")], utc(2026, 7, 5))
    assert actions(plan.due) == [("m", Action.MOVE, VAULT)]


def test_a_locked_backup_waits_and_says_until_when() -> None:
    locked = BackupPoint(
        "a", utc(2025, 1, 1), "Default", frozenset({VAULT}), locked_until=utc(2026, 3, 1)
    )
    plan = plan_retention(policy(), [locked, point("b", utc(2026, 1, 1))], utc(2026, 1, 2))
    assert plan.due == ()
    assert plan.held[0].until == utc(2026, 3, 1)
    assert plan.next_due == utc(2026, 3, 1)


def test_a_legally_held_backup_is_held_with_no_end_date() -> None:
    held = BackupPoint("a", utc(2025, 1, 1), "Default", frozenset({VAULT}), legal_holds=2)
    plan = plan_retention(policy(), [held, point("b", utc(2026, 1, 1))], utc(2026, 1, 2))
    assert plan.due == ()
    assert [(h.step.backup_id, h.step.action, h.reason, h.until) for h in plan.held] == [
        ("a", Action.DELETE, "legal hold on 2 objects (held until the hold is removed)", None)
    ]
    # the hold removed, the same backup is due again
    free = replace(held, legal_holds=0)
    assert actions(
        plan_retention(policy(), [free, point("b", utc(2026, 1, 1))], utc(2026, 1, 2)).due
    ) == [("a", Action.DELETE, VAULT)]


def test_a_backup_others_depend_on_is_kept_while_they_are() -> None:
    backups = [
        point("full", utc(2025, 1, 1)),
        point("incr", utc(2025, 5, 1)),
        point("last", utc(2026, 1, 1)),
    ]
    children = {"full": ["incr"]}
    plan = plan_retention(policy(), backups, utc(2025, 7, 1), lambda b: children.get(b, []))
    assert plan.due == ()
    assert plan.held[0].reason == "backups incr depend on it"
    plan = plan_retention(policy(), backups, utc(2025, 8, 2), lambda b: children.get(b, []))
    assert actions(plan.due) == [("full", Action.DELETE, VAULT), ("incr", Action.DELETE, VAULT)]


def test_the_newest_backup_keeps_the_chain_it_builds_on_when_all_have_expired() -> None:
    # backups failed (or no agent ran) for longer than deleteAfter: the whole chain is past
    # its expiry; the newest stays, so the full and the incremental it builds on stay too
    backups = [
        point("full", utc(2025, 1, 1)),
        point("incr1", utc(2025, 1, 2)),
        point("incr2", utc(2025, 1, 3)),
    ]
    children = {"full": ["incr1", "incr2"], "incr1": ["incr2"]}
    plan = plan_retention(policy(), backups, utc(2026, 1, 1), lambda b: children.get(b, []))
    assert plan.due == ()
    assert [(h.step.backup_id, h.reason) for h in plan.held] == [
        ("full", "backups incr2 depend on it"),
        ("incr1", "backups incr2 depend on it"),
        ("incr2", "the newest good backup is never deleted"),
    ]


def test_an_immediate_copy_keeps_both_tiers_until_the_vault_copy_expires() -> None:
    document = edited_policy()
    lifecycle = document["policyRules"][2]["lifecycles"][0]
    lifecycle["targetDataStoreCopySettings"]["copyAfter"] = {"objectType": "ImmediateCopyOption"}
    immediate = parse_policy(json.dumps(document))
    taken = utc(2026, 1, 4)
    newest = point("z", utc(2030, 1, 1))
    plan = plan_retention(immediate, [point("m", taken, "Monthly"), newest], taken)
    assert [(s.action, s.target) for s in plan.due] == [(Action.COPY, ARCHIVE)]
    both = point("m", taken, "Monthly", VAULT, ARCHIVE)
    plan = plan_retention(immediate, [both, newest], utc(2026, 7, 4))
    assert actions(plan.due) == [("m", Action.DELETE, VAULT)]
    assert plan.upcoming[0].due == utc(2028, 1, 4)  # 24 months after it reached the archive
