"""Protection status: thresholds come from the schedule's longest recent gap; health goes
healthy -> warning -> critical as the newest backup ages; stopped and never-run instances."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from core.protection.model import (
    BackupInstance,
    Datasource,
    ProtectionState,
    RunRecord,
    RunState,
    RunTrigger,
)
from core.protection.policy_read import parse_policy
from core.protection.status import Health, instance_status, interval_of, schedule_of
from tests.core.protection.policies import edited_policy, template_text

CREATED = datetime(2021, 8, 1, tzinfo=UTC)
INSTANCE = BackupInstance("db", "pg1", Datasource("host=/tmp"), "p", created=CREATED)


def run(slot: datetime, finished: datetime, state: RunState = RunState.SUCCEEDED) -> RunRecord:
    return RunRecord(
        "db", slot, "BackupWeekly", RunTrigger.SCHEDULED, state, "host:1", "Default",
        "1", "20210818T220000", finished,
    )  # fmt: skip


def test_the_interval_is_the_longest_gap_of_a_sun_wed_fri_schedule() -> None:
    schedule = schedule_of(parse_policy(json.dumps(edited_policy())))
    assert schedule is not None
    # Sun->Wed is three days, Wed->Fri and Fri->Sun two
    assert interval_of(schedule, datetime(2021, 9, 2, tzinfo=UTC)) == timedelta(days=3)
    weekly = schedule_of(parse_policy(template_text()))
    assert weekly is not None
    assert interval_of(weekly, datetime(2021, 9, 2, tzinfo=UTC)) == timedelta(weeks=1)


def test_health_follows_the_newest_backups_age_against_the_interval() -> None:
    policy = parse_policy(template_text())  # weekly, Sundays 06:30 UTC
    slot = datetime(2021, 8, 15, 6, 30, tzinfo=UTC)
    runs = [
        run(slot - timedelta(weeks=1), slot - timedelta(weeks=1) + timedelta(minutes=5)),
        run(slot, slot + timedelta(minutes=10)),
        run(slot + timedelta(weeks=1), slot + timedelta(weeks=1, minutes=1), RunState.FAILED),
    ]
    end = slot + timedelta(minutes=10)

    def health(at: timedelta) -> Health:
        return instance_status("v", INSTANCE, policy, runs, end + at).health

    assert health(timedelta(days=10)) is Health.HEALTHY
    assert health(timedelta(days=10, hours=12, minutes=1)) is Health.WARNING
    assert health(timedelta(days=14, minutes=1)) is Health.CRITICAL
    status = instance_status("v", INSTANCE, policy, runs, end + timedelta(days=1))
    document = status.to_json()
    assert document["lastSuccess"] == end.isoformat()
    assert document["rpoSeconds"] == 86400
    assert document["nextDue"] == (slot + timedelta(weeks=1)).isoformat()
    assert document["thresholds"] == {
        "criticalAfterSeconds": 14 * 86400,
        "warningAfterSeconds": int(10.5 * 86400),
    }
    assert "weekly" in str(document["policyDescription"]).lower()


def test_never_run_and_stopped_instances() -> None:
    policy = parse_policy(template_text())
    young = instance_status("v", INSTANCE, policy, [], CREATED + timedelta(days=3))
    assert (young.health, young.reason) == (Health.WARNING, "no successful backup yet")
    old = instance_status("v", INSTANCE, policy, [], CREATED + timedelta(days=15))
    assert old.health is Health.CRITICAL
    assert old.to_json()["rpoSeconds"] is None
    stopped = replace(INSTANCE, state=ProtectionState.STOPPED)
    status = instance_status("v", stopped, policy, [], CREATED + timedelta(days=30))
    assert (status.health, status.reason) == (Health.WARNING, "protection is stopped")


def test_the_rpo_counts_wal_archived_after_the_newest_backup() -> None:
    policy = parse_policy(template_text())
    slot = datetime(2021, 8, 15, 6, 30, tzinfo=UTC)
    runs = [run(slot, slot + timedelta(minutes=10))]
    now = slot + timedelta(days=2)
    wal = now - timedelta(minutes=3)
    document = instance_status("v", INSTANCE, policy, runs, now, wal).to_json()
    assert document["rpoSeconds"] == 180
    assert document["walArchiveLagSeconds"] == 180
    assert document["lastWalArchived"] == wal.isoformat()
    # WAL older than the backup does not make the RPO worse; no backup, no restorable point
    old = instance_status("v", INSTANCE, policy, runs, now, slot - timedelta(days=1))
    assert old.to_json()["rpoSeconds"] == 2 * 86400 - 600
    assert instance_status("v", INSTANCE, policy, [], now, wal).to_json()["rpoSeconds"] is None


def test_of_two_runs_ending_in_the_same_second_the_later_slot_is_the_last() -> None:
    policy = parse_policy(template_text())
    slot = datetime(2021, 8, 15, 6, 30, tzinfo=UTC)
    end = slot + timedelta(minutes=2)
    earlier = replace(run(slot, end), backup_id="20210815T063000")
    later = replace(run(slot + timedelta(minutes=1), end), backup_id="20210815T063100")
    for runs in ([earlier, later], [later, earlier]):
        status = instance_status("v", INSTANCE, policy, runs, end + timedelta(hours=1))
        assert status.to_json()["lastBackupId"] == "20210815T063100"
