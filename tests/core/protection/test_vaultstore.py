"""A vault's state in its destination: conditional creation, listing, refusals; barman-cloud
still lists the destination's catalog."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import InputError
from core.jobs import JobStore
from core.protection.model import (
    BackupInstance,
    Datasource,
    ProtectionState,
    RunRecord,
    RunState,
    RunTrigger,
    Vault,
)
from core.protection.policy_read import parse_policy
from core.protection.registry import VaultEntry
from core.protection.runs import take_backup
from core.protection.secretref import SecretReference
from core.protection.service import OpenVault
from core.protection.vaultstore import VaultStore, VaultUnavailable, list_vaults
from core.storage import ObjectStore
from tests.core.protection.policies import osspol5_text, template_text
from tests.support.destinations import TestDestination
from tests.support.fakebackup import FakeBackup
from tests.support.restore import run_barman

MakeDest = Callable[..., TestDestination]
SLOT = datetime(2026, 3, 29, 1, tzinfo=UTC)


def instance(name: str = "empdb11", policy: str = "osspol5") -> BackupInstance:
    return BackupInstance(
        name,
        "pg-main",
        Datasource("host=db user=backup dbname=empdb11", SecretReference.parse("env:PGPASS")),
        policy,
    )


def run(claimed_by: str, slot: datetime = SLOT) -> RunRecord:
    return RunRecord(
        "empdb11", slot, "BackupWeekly", RunTrigger.SCHEDULED, RunState.CLAIMED, claimed_by
    )


def filled(store: ObjectStore) -> VaultStore:
    vaults = VaultStore(store, "TestBkpVault")
    vaults.create(Vault("TestBkpVault", "s3://x/y", 7, SLOT))
    vaults.create_policy("osspol5", parse_policy(osspol5_text()))
    vaults.create_instance(instance())
    return vaults


@pytest.mark.parametrize("provider", ["file", "s3", "azure", "gcs"])
def test_vault_state_lives_in_the_destination(make_dest: MakeDest, provider: str) -> None:
    with make_dest(provider).store() as store:
        vaults = filled(store)
        assert list_vaults(store) == ["TestBkpVault"]
        assert vaults.load().immutability_days == 7
        assert vaults.list_policies() == ["osspol5"]
        assert vaults.get_policy("osspol5") == parse_policy(osspol5_text())
        assert vaults.get_instance("empdb11") == instance()
        keys = sorted(item.key for item in store.list_objects(""))
        assert keys == [
            ".pgvault/vaults/TestBkpVault/instances/empdb11.json",
            ".pgvault/vaults/TestBkpVault/policies/osspol5.json",
            ".pgvault/vaults/TestBkpVault/vault.json",
        ]
        stored = store.get_bytes(".pgvault/vaults/TestBkpVault/instances/empdb11.json").decode()
        assert (
            json.loads(stored)["datasourceAuthCredentials"]["secretStoreResource"]["uri"]
            == "PGPASS"
        )


@pytest.mark.parametrize("provider", ["file", "s3", "azure", "gcs"])
def test_creation_is_conditional_and_a_slot_is_claimed_once(
    make_dest: MakeDest, provider: str
) -> None:
    with make_dest(provider).store() as store:
        vaults = filled(store)
        with pytest.raises(InputError, match="vault 'TestBkpVault' already exists"):
            VaultStore(store, "TestBkpVault").create(Vault("TestBkpVault", "s3://other/z"))
        with pytest.raises(InputError, match="policy 'osspol5' already exists"):
            vaults.create_policy("osspol5", parse_policy(template_text()))
        with pytest.raises(InputError, match="backup instance 'empdb11' already exists"):
            vaults.create_instance(instance())
        assert vaults.claim_run(run("host-a:1"))
        assert not vaults.claim_run(run("host-b:2"))
        assert vaults.get_run("empdb11", SLOT).claimed_by == "host-a:1"
        done = RunRecord(
            **{
                **run("host-a:1").__dict__,
                "state": RunState.SUCCEEDED,
                "backup_id": "20260329T010000",
            }
        )
        vaults.update_run(done)
        assert vaults.claim_run(run("host-b:2", datetime(2026, 4, 5, 1, tzinfo=UTC)))
        assert [(r.slot.day, r.state) for r in vaults.runs("empdb11")] == [
            (29, RunState.SUCCEEDED),
            (5, RunState.CLAIMED),
        ]


@pytest.mark.parametrize("provider", ["file", "s3", "azure", "gcs"])
def test_deletes_are_refused_while_something_uses_the_target(
    make_dest: MakeDest, provider: str
) -> None:
    with make_dest(provider).store() as store:
        vaults = filled(store)
        with pytest.raises(InputError, match="no policy 'nope'"):
            vaults.create_instance(instance("other", "nope"))
        with pytest.raises(InputError, match="policy 'osspol5' is used by empdb11"):
            vaults.delete_policy("osspol5")
        with pytest.raises(InputError, match="still protects empdb11"):
            vaults.delete()
        vaults.update_instance(
            BackupInstance(**{**instance().__dict__, "state": ProtectionState.STOPPED})
        )
        assert vaults.get_instance("empdb11").state is ProtectionState.STOPPED
        vaults.claim_run(run("host-a:1"))
        assert vaults.delete_instance("empdb11") == 2
        vaults.delete_policy("osspol5")
        assert vaults.delete() == 1
        assert list(store.list_objects("")) == []
        with pytest.raises(VaultUnavailable, match=r"no \.pgvault/vaults/TestBkpVault/vault\.json"):
            vaults.load()


def test_barman_cloud_still_lists_a_destination_holding_a_vault(make_dest: MakeDest) -> None:
    dest = make_dest("s3")
    with dest.store() as store:
        filled(store)
        with tempfile.TemporaryDirectory() as root:
            FakeBackup("20260101T000000").write(root, "pg-main")
            for directory, _, files in os.walk(root):
                for name in files:
                    path = os.path.join(directory, name)
                    with open(path, "rb") as handle:
                        store.put_bytes(os.path.relpath(path, root), handle.read())
    listed = run_barman("backup-list", dest, "--format", "json", dest.url, "pg-main")
    backups = json.loads(listed.stdout)["backups_list"]
    assert [b["backup_id"] for b in backups] == ["20260101T000000"]


def test_an_adhoc_run_never_loses_its_second_to_an_earlier_one(
    make_dest: MakeDest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASS", raising=False)  # the run then fails fast, before any job
    dest = make_dest("file")
    with dest.store() as store, JobStore.open(str(tmp_path)) as jobs:
        vaults = filled(store)
        opened = OpenVault(VaultEntry("TestBkpVault", dest.url), vaults)
        earlier = RunRecord(
            "empdb11", SLOT, "Daily", RunTrigger.ADHOC, RunState.SUCCEEDED, "host-a:1"
        )
        assert vaults.claim_run(earlier)
        adhoc = take_backup(
            opened, jobs, instance(), rule="Daily", slot=SLOT,
            trigger=RunTrigger.ADHOC, tag="Default", agent_id="host-a:2",
        )  # fmt: skip
        assert adhoc.claimed and adhoc.slot == SLOT + timedelta(seconds=1)
        assert adhoc.record is not None and adhoc.record.state is RunState.FAILED
        assert "PGPASS" in (adhoc.record.error or "")
        assert [r.slot for r in vaults.runs("empdb11")] == [SLOT, SLOT + timedelta(seconds=1)]
        # A scheduled slot is shared by the agents: the second one to claim it stands aside.
        assert vaults.claim_run(run("host-b:1"))
        scheduled = take_backup(
            opened, jobs, instance(), rule="BackupWeekly", slot=SLOT,
            trigger=RunTrigger.SCHEDULED, tag="Default", agent_id="host-a:2",
        )  # fmt: skip
        assert not scheduled.claimed
        assert vaults.get_run("empdb11", SLOT).claimed_by == "host-b:1"


def test_a_damaged_run_record_is_named_by_its_file(make_dest: MakeDest) -> None:
    # the agent's error for the instance (every pass, backups stopped) said only
    # "run record $.instance: ...": which of its hundreds of records was not said
    with make_dest("file").store() as store:
        vaults = filled(store)
        assert vaults.claim_run(run("host-a:1"))
        key = ".pgvault/vaults/TestBkpVault/runs/empdb11/20260329T010000Z.json"
        assert store.exists(key)
        store.put_bytes(key, b'{"objectType": "PgvaultRun", "slot": 5}')
        with pytest.raises(InputError) as listed:
            list(vaults.runs("empdb11"))
        assert str(listed.value).startswith(f"run record {key} $.instance: expected"), listed
        with pytest.raises(InputError) as one:
            vaults.get_run("empdb11", SLOT)
        assert f"({key}) $.instance: expected" in str(one.value), one
