"""Backups the operator keeps (`backup-keep`), and the full backup a kept incremental
builds on, are held by the agent's retention with the reason, never tried and failed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.catalog.backup_info import DONE, FAILED, STARTED, BackupInfo, serialize
from core.catalog.keep import KEEP_FULL, KEEP_STANDALONE, release_keep, set_keep
from core.catalog.layout import ServerLayout
from core.catalog.owner import lease_body, lease_key, this_process
from core.catalog.reader import Catalog
from core.jobs import JobStore
from core.protection.lifecycles import apply_retention
from core.protection.model import BackupInstance, Datasource, RunRecord, RunState, RunTrigger
from core.protection.model import Vault as VaultRecord
from core.protection.policy_read import parse_policy
from core.protection.registry import entry_for
from core.protection.service import OpenVault
from core.protection.vaultstore import VaultStore
from tests.core.protection.policies import edited_policy
from tests.support.catalog import SERVER, put_wal
from tests.support.destinations import TestDestination

START = datetime(2026, 1, 4, 22, tzinfo=UTC)
WAL = [f"0000000100000000000000{n:02X}" for n in range(1, 10)]
#: backup -> (days after START, parent); all tagged Default (P3M)
BACKUPS = {
    "20260105T220000": (1, None),  # kept full
    "20260106T220000": (2, None),  # the full a kept incremental builds on
    "20260107T220000": (3, "20260106T220000"),  # kept incremental
    "20260108T220000": (4, None),  # nothing keeps it
    "20260109T220000": (5, None),  # the newest
}
KEPT, PARENT, INCREMENTAL, PLAIN, NEWEST = BACKUPS


def test_kept_backups_and_what_they_need_are_held_not_failed(
    make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    dest = make_dest("file")
    policy = parse_policy(json.dumps(edited_policy()))  # Default P3M
    instance = BackupInstance("db", SERVER, Datasource("host=/tmp"), "p", created=START)
    layout = ServerLayout(SERVER)
    with dest.store() as store, JobStore.open(str(tmp_path)) as jobs:
        vaults = VaultStore(store, "v1")
        vault = VaultRecord("v1", dest.url)
        vaults.create(vault)
        vaults.create_policy("p", policy)
        vaults.create_instance(instance)
        put_wal(dest, WAL)
        for n, (backup_id, (days, parent)) in enumerate(BACKUPS.items()):
            wal = WAL[n + 1]
            info = BackupInfo(
                backup_id=backup_id, status=DONE, begin_wal=wal, end_wal=wal, timeline=1,
                end_time=None, xlog_segment_size=16 * 1024 * 1024, parent_backup_id=parent,
            )  # fmt: skip
            store.put_bytes(layout.backup_info(backup_id), serialize(info))
            store.put_bytes(layout.backup_file(backup_id, "data.tar"), b"\0" * 1024)
            slot = START + timedelta(days=days)
            vaults.claim_run(
                RunRecord(
                    "db", slot, "BackupWeekly", RunTrigger.SCHEDULED, RunState.SUCCEEDED,
                    "host:1", "Default", None, backup_id, slot,
                )
            )  # fmt: skip
        catalog = Catalog(store, SERVER)
        set_keep(store, SERVER, catalog.get(KEPT), KEEP_FULL)
        set_keep(store, SERVER, catalog.get(INCREMENTAL), KEEP_STANDALONE)
        opened = OpenVault(entry_for(vault, None, dest.config), vaults)

        # four months on every backup is past its P3M
        outcomes = apply_retention(opened, jobs, instance, policy, START + timedelta(days=125))
        assert {(o.backup_id, o.action, o.result, o.reason) for o in outcomes} == {
            (KEPT, "delete", "held", "kept by backup-keep (full) until released with "
             "backup-keep --release"),
            (INCREMENTAL, "delete", "held", "kept by backup-keep (standalone) until released "
             "with backup-keep --release"),
            (PARENT, "delete", "held", f"backups {INCREMENTAL} depend on it"),
            (PLAIN, "delete", "done", None),
            (NEWEST, "delete", "held", "the newest good backup is never deleted"),
        }  # fmt: skip
        assert [job.kind for job in jobs.list_jobs()] == ["delete"]  # only PLAIN's was run

        # released, the incremental goes first, then the full it built on
        release_keep(store, SERVER, INCREMENTAL)
        later = apply_retention(opened, jobs, instance, policy, START + timedelta(days=126))
        assert {(o.backup_id, o.result) for o in later if o.result != "held"} == {
            (INCREMENTAL, "done"),
            (PARENT, "done"),
        }
        assert [b.backup_id for b in Catalog(store, SERVER).backups()] == [KEPT, NEWEST]


@pytest.mark.parametrize("interrupted", [FAILED, STARTED])
def test_a_failed_incremental_holds_no_chain_and_goes_before_its_parent(
    make_dest: Callable[..., TestDestination], tmp_path: Path, interrupted: str
) -> None:
    # a killed or failed incremental stays FAILED in the catalog; it held its whole chain
    # for good ("backups F depend on it") and the delete job refused the parent while it
    # was there: one failed incremental and a week's chain was never deleted. A killed one
    # that no host with the key reaped stays STARTED, its owner gone: it held the chain
    # while a plain one, reaped FAILED, went with it (one rule now for both)
    dest = make_dest("file")
    policy = parse_policy(json.dumps(edited_policy()))  # Default P3M
    instance = BackupInstance("db", SERVER, Datasource("host=/tmp"), "p", created=START)
    layout = ServerLayout(SERVER)
    full, incremental, failed, newest = (
        "20260105T220000", "20260106T220000", "20260107T220000", "20260112T220000",
    )  # fmt: skip
    shape = {
        full: (1, None, DONE),
        incremental: (2, full, DONE),
        failed: (3, incremental, interrupted),
        newest: (8, None, DONE),
    }
    with dest.store() as store, JobStore.open(str(tmp_path)) as jobs:
        vaults = VaultStore(store, "v1")
        vault = VaultRecord("v1", dest.url)
        vaults.create(vault)
        vaults.create_policy("p", policy)
        vaults.create_instance(instance)
        put_wal(dest, WAL)
        for n, (backup_id, (days, parent, status)) in enumerate(shape.items()):
            wal = WAL[n + 1]
            info = BackupInfo(
                backup_id=backup_id, status=status, begin_wal=wal, end_wal=wal, timeline=1,
                end_time=None, xlog_segment_size=16 * 1024 * 1024, parent_backup_id=parent,
            )  # fmt: skip
            store.put_bytes(layout.backup_info(backup_id), serialize(info))
            store.put_bytes(layout.backup_file(backup_id, "data.tar"), b"\0" * 1024)
            slot = START + timedelta(days=days)
            state = RunState.SUCCEEDED if status == DONE else RunState.FAILED
            if status == STARTED:  # its owner, on this machine, is gone
                dead = {**this_process(), "pid": _dead_pid()}
                store.put_bytes(lease_key(layout, backup_id), lease_body(dead))
            vaults.claim_run(
                RunRecord(
                    "db", slot, "BackupWeekly", RunTrigger.SCHEDULED, state,
                    "host:1", "Default", None, backup_id, slot,
                )
            )  # fmt: skip
        opened = OpenVault(entry_for(vault, None, dest.config), vaults)

        outcomes = apply_retention(opened, jobs, instance, policy, START + timedelta(days=125))
        assert {(o.backup_id, o.action, o.result, o.reason) for o in outcomes} == {
            (incremental, "delete", "done", None),
            (full, "delete", "done", None),
            (newest, "delete", "held", "the newest good backup is never deleted"),
        }
        assert [b.backup_id for b in Catalog(store, SERVER).backups()] == [newest]


def _dead_pid() -> int:
    """A PID no process holds now (a child that has exited and been reaped)."""
    child = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    return int(child.stdout)
