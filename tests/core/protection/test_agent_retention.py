"""The agent's retention: an expired VaultStore backup is deleted by a delete job, an
ArchiveStore move is refused openly (held, the backup stays), the newest is kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.catalog.reader import Catalog
from core.jobs import JobStore
from core.protection.agent import ARCHIVE_REFUSAL, apply_retention
from core.protection.model import (
    BackupInstance,
    Datasource,
    RunRecord,
    RunState,
    RunTrigger,
    Vault,
)
from core.protection.policy_read import parse_policy
from core.protection.registry import VaultEntry
from core.protection.service import OpenVault
from core.protection.vaultstore import VaultStore
from tests.core.protection.policies import edited_policy
from tests.support.catalog import SERVER, put_backup
from tests.support.destinations import TestDestination

START = datetime(2026, 1, 4, 22, tzinfo=UTC)  # a Sunday, 22:00 UTC


def test_deletes_the_expired_and_holds_archive_moves(
    make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    dest = make_dest("file")
    policy = parse_policy(json.dumps(edited_policy()))  # Default P3M; Monthly 6M then archive
    instance = BackupInstance("db", SERVER, Datasource("host=/tmp"), "p", created=START)
    slots = {
        "20260104T220000": (START, "Monthly"),
        "20260107T220000": (START + timedelta(days=3), "Default"),
        "20260109T220000": (START + timedelta(days=5), "Default"),
    }
    with dest.store() as store, JobStore.open(str(tmp_path)) as jobs:
        vault_store = VaultStore(store, "v1")
        vault_store.create(Vault("v1", dest.url))
        vault_store.create_policy("p", policy)
        vault_store.create_instance(instance)
        for backup_id, (slot, tag) in slots.items():
            put_backup(dest, backup_id)
            record = RunRecord(
                "db", slot, "BackupWeekly", RunTrigger.SCHEDULED, RunState.SUCCEEDED,
                "host:1", tag, None, backup_id, slot,
            )  # fmt: skip
            assert vault_store.claim_run(record)
        opened = OpenVault(VaultEntry("v1", dest.url), vault_store)
        # seven months on: both Defaults are past P3M, the Monthly past its 6 months in the vault
        now = START + timedelta(days=213)
        outcomes = apply_retention(opened, jobs, instance, policy, now)
        results = {(o.backup_id, o.action, o.result, o.reason) for o in outcomes}
        assert results == {
            ("20260104T220000", "move", "held", ARCHIVE_REFUSAL),
            ("20260107T220000", "delete", "done", None),
            ("20260109T220000", "delete", "held", "the newest good backup is never deleted"),
        }
        left = [info.backup_id for info in Catalog(store, SERVER).backups()]
        assert left == ["20260104T220000", "20260109T220000"]
        assert [job.kind for job in jobs.list_jobs()] == ["delete"]
