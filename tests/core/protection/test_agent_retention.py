"""The agent's retention under a fake clock: an expired VaultStore backup is deleted by a
delete job, a Monthly one moves to the archive tier (its WAL kept), the ArchiveStore
lifecycle deletes it later, the newest is kept. Local, moto S3 and Azurite; GCS refused."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.catalog.layout import ServerLayout
from core.catalog.listing import list_backups
from core.catalog.lock import server_lock
from core.catalog.reader import Catalog
from core.jobs import JobStore
from core.protection.agent import run_pass
from core.protection.lifecycles import COPY_IN_PLACE, RetentionOutcome, apply_retention
from core.protection.model import (
    BackupInstance,
    Datasource,
    RunRecord,
    RunState,
    RunTrigger,
    Vault,
)
from core.protection.policy import BackupPolicy
from core.protection.policy_read import parse_policy
from core.protection.registry import Registry, entry_for
from core.protection.service import OpenVault, update_instance
from core.protection.vaultstore import VaultStore
from tests.core.protection.policies import edited_policy, template_text
from tests.support.catalog import SERVER, put_backup, put_wal, wal_names
from tests.support.destinations import TestDestination

START = datetime(2026, 1, 4, 22, tzinfo=UTC)  # a Sunday, 22:00 UTC
MONTHLY, OLDER, NEWEST = "20260104T220000", "20260107T220000", "20260109T220000"
SLOTS = {
    MONTHLY: (START, "Monthly", "000000010000000000000002"),
    OLDER: (START + timedelta(days=3), "Default", "000000010000000000000004"),
    NEWEST: (START + timedelta(days=5), "Default", "000000010000000000000006"),
}
WAL = [f"0000000100000000000000{n:02X}" for n in range(1, 8)]
NEVER = "the newest good backup is never deleted"


@contextmanager
def _vault(
    dest: TestDestination, tmp_path: Path, policy: BackupPolicy
) -> Iterator[tuple[OpenVault, JobStore, BackupInstance]]:
    """A vault with the three backups (and their WAL) recorded as successful runs."""
    instance = BackupInstance("db", SERVER, Datasource("host=/tmp"), "p", created=START)
    with dest.store() as store, JobStore.open(str(tmp_path)) as jobs:
        vault_store = VaultStore(store, "v1")
        vault = Vault("v1", dest.url)
        vault_store.create(vault)
        vault_store.create_policy("p", policy)
        vault_store.create_instance(instance)
        put_wal(dest, WAL)
        for backup_id, (slot, tag, wal) in SLOTS.items():
            put_backup(dest, backup_id, begin=wal, end=wal)
            record = RunRecord(
                "db", slot, "BackupWeekly", RunTrigger.SCHEDULED, RunState.SUCCEEDED,
                "host:1", tag, None, backup_id, slot,
            )  # fmt: skip
            assert vault_store.claim_run(record)
        yield OpenVault(entry_for(vault, None, dest.config), vault_store), jobs, instance


def _results(outcomes: list[RetentionOutcome]) -> set[tuple[str, str, str, str | None]]:
    return {(o.backup_id, o.action, o.result, o.reason) for o in outcomes}


def _tiers(dest: TestDestination) -> dict[str, str]:
    with dest.store() as store:
        return {b.backup_id: b.tier for b in list_backups(store, SERVER).backups}


@pytest.mark.parametrize("provider", ["file", "s3", "azure"])
def test_a_monthly_backup_moves_to_the_archive_tier_then_expires_there(
    provider: str, make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    dest = make_dest(provider)
    policy = parse_policy(json.dumps(edited_policy()))  # Default P3M; Monthly 6M, then 24M archive
    with _vault(dest, tmp_path, policy) as (opened, jobs, instance):
        store = opened.store.store
        # seven months on: both Defaults are past P3M, the Monthly past its 6 months in the vault
        outcomes = apply_retention(opened, jobs, instance, policy, START + timedelta(days=213))
        assert _results(outcomes) == {
            (MONTHLY, "move", "done", None),
            (OLDER, "delete", "done", None),
            (NEWEST, "delete", "held", NEVER),
        }
        assert _tiers(dest) == {MONTHLY: "archive", NEWEST: "standard"}
        data = ServerLayout(SERVER).backup_file(MONTHLY, "data.tar")
        assert store.is_archived(store.head(data))
        assert not store.is_archived(store.head(ServerLayout(SERVER).backup_info(MONTHLY)))
        # the archived backup is still the oldest: every WAL from its begin on is kept
        assert set(WAL) <= wal_names(dest)
        assert [job.kind for job in jobs.list_jobs()] == ["delete"]

        # a year later it is still in the archive: nothing is due, the move is not repeated
        again = apply_retention(opened, jobs, instance, policy, START + timedelta(days=600))
        assert _results(again) == {(NEWEST, "delete", "held", NEVER)}

        # the ArchiveStore lifecycle counts 24 months from the move (6 months after it was taken)
        last = apply_retention(opened, jobs, instance, policy, START + timedelta(days=31 * 30 + 2))
        assert _results(last) == {
            (MONTHLY, "delete", "done", None),
            (NEWEST, "delete", "held", NEVER),
        }
        assert [b.backup_id for b in Catalog(store, SERVER).backups()] == [NEWEST]
        prefix = ServerLayout(SERVER).backup_prefix(MONTHLY)
        assert list(store.list_objects(prefix)) == []
        # with it went the WAL before the newest backup; the newest's own stays
        assert wal_names(dest) == set(WAL[5:])


def test_an_immediate_copy_is_held_then_made_as_a_move_when_the_vault_copy_expires(
    make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    document: dict[str, Any] = edited_policy()
    monthly = document["policyRules"][-1]
    copy = monthly["lifecycles"][0]["targetDataStoreCopySettings"]
    copy["copyAfter"] = {"objectType": "ImmediateCopyOption"}
    policy = parse_policy(json.dumps(document))
    dest = make_dest("file")
    with _vault(dest, tmp_path, policy) as (opened, jobs, instance):
        early = apply_retention(opened, jobs, instance, policy, START + timedelta(days=7))
        assert _results(early) == {(MONTHLY, "copy", "held", COPY_IN_PLACE)}
        assert _tiers(dest)[MONTHLY] == "standard"
        later = apply_retention(opened, jobs, instance, policy, START + timedelta(days=213))
        assert (MONTHLY, "move", "done", None) in _results(later)
        assert _tiers(dest)[MONTHLY] == "archive"


def test_gcs_has_no_archive_tier_so_the_move_is_held_and_the_backup_stays(
    make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    dest = make_dest("gcs")
    policy = parse_policy(json.dumps(edited_policy()))
    with _vault(dest, tmp_path, policy) as (opened, jobs, instance):
        outcomes = apply_retention(opened, jobs, instance, policy, START + timedelta(days=213))
        held = [o for o in outcomes if o.backup_id == MONTHLY]
        assert [(o.action, o.result) for o in held] == [("move", "held")]
        assert "GCS ARCHIVE storage class is not built" in (held[0].reason or "")
        assert _tiers(dest)[MONTHLY] == "standard"


def test_an_instance_moved_to_another_policy_keeps_its_runs_and_the_next_pass_applies_it(
    make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    document: dict[str, Any] = json.loads(template_text())  # Default P3M, no Monthly rule
    rule = document["policyRules"][0]
    # one slot, already run: the pass has no backup to take, only retention to apply
    rule["trigger"]["schedule"]["repeatingTimeIntervals"] = ["R1/2026-01-04T22:00:00+00:00/P1W"]
    document["policyRules"][1]["lifecycles"][0]["deleteAfter"]["duration"] = "P7D"
    dest = make_dest("file")
    twenty_days_on = START + timedelta(days=20)
    policy = parse_policy(json.dumps(edited_policy()))
    with _vault(dest, tmp_path, policy) as (opened, jobs, instance):
        opened.store.create_policy("short", parse_policy(json.dumps(document)))
        assert apply_retention(opened, jobs, instance, policy, twenty_days_on) == []  # P3M
        state = str(tmp_path / "state")
        Registry(state).add(opened.entry)
        update_instance(state, "v1", "db", None, policy="short")
        assert opened.store.get_instance("db").policy_name == "short"
        assert {r.backup_id for r in opened.store.runs("db")} == set(SLOTS)
        # the Monthly backup has no rule of its name there: it goes by the default rule
        report = run_pass(opened, jobs, twenty_days_on, "test")
        assert report.errors == []
        assert _results(report.retention) == {
            (MONTHLY, "delete", "done", None),
            (OLDER, "delete", "done", None),
            (NEWEST, "delete", "held", NEVER),
        }
        assert {r.backup_id for r in opened.store.runs("db")} == set(SLOTS)


def test_a_deletion_another_agent_is_running_is_held_not_failed(
    make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    # two agents on one vault: one's delete job held the server's lock, the other's failed
    # ("server pg1 is busy"), reported and notified as a failed retention
    dest = make_dest("file")
    policy = parse_policy(template_text())  # Default P3M, no archive
    with _vault(dest, tmp_path, policy) as (opened, jobs, instance):
        store = opened.store.store
        later = START + timedelta(days=213)
        with server_lock(store, SERVER, "delete backup X of pg1 (another agent)"):
            outcomes = apply_retention(opened, jobs, instance, policy, later)
        held = {(o.backup_id, o.result) for o in outcomes if o.backup_id != NEWEST}
        assert held == {(MONTHLY, "held"), (OLDER, "held")}, outcomes
        reason = next(o.reason for o in outcomes if o.backup_id == OLDER) or ""
        assert "is busy" in reason and "the next pass tries again" in reason
        # the lock released, the next pass deletes them
        again = apply_retention(opened, jobs, instance, policy, later)
        assert {(o.backup_id, o.result) for o in again} == {
            (MONTHLY, "done"), (OLDER, "done"), (NEWEST, "held"),
        }  # fmt: skip
