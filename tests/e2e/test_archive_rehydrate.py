"""A Monthly backup the agent moved to the archive tier (fake clock): backup-list shows it
archived, restore and verify are refused (exit 1, naming the way out), restore --rehydrate
runs a rehydrate job then the restore, and PostgreSQL starts on it with the same data."""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.catalog.layout import ServerLayout
from core.catalog.tier import archive_objects
from core.jobs import JobStore
from core.protection.lifecycles import apply_retention
from core.protection.model import BackupInstance, Datasource, RunRecord, RunState, RunTrigger, Vault
from core.protection.policy_read import parse_policy
from core.protection.registry import entry_for
from core.protection.service import OpenVault
from core.protection.vaultstore import VaultStore
from tests.core.protection.policies import edited_policy
from tests.support.catalog import SERVER, ArchivedServer, archived_server
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.emulators import Emulator
from tests.support.postgres import start_restored, wait_for_recovery_end, world_dir


def _move_to_archive(server: ArchivedServer, backup_id: str, state: Path) -> None:
    """The agent's retention, seven months after a Monthly-tagged run of this backup."""
    dest = server.dest
    policy = parse_policy(json.dumps(edited_policy()))
    taken = datetime.now(UTC).replace(microsecond=0)
    instance = BackupInstance("db", SERVER, Datasource("host=/tmp"), "p", created=taken)
    with dest.store() as store, JobStore.open(str(state)) as jobs:
        vault_store = VaultStore(store, "v1")
        vault = Vault("v1", dest.url)
        vault_store.create(vault)
        vault_store.create_policy("p", policy)
        vault_store.create_instance(instance)
        record = RunRecord(
            "db", taken, "BackupWeekly", RunTrigger.SCHEDULED, RunState.SUCCEEDED,
            "host:1", "Monthly", None, backup_id, taken,
        )  # fmt: skip
        assert vault_store.claim_run(record)
        opened = OpenVault(entry_for(vault, None, dest.config), vault_store)
        outcomes = apply_retention(opened, jobs, instance, policy, taken + timedelta(days=213))
    assert [(o.action, o.result) for o in outcomes] == [("move", "done")], outcomes


def _moto_restores_take(emulators: dict[str, Emulator], polls: int | None) -> None:
    """moto's S3 restores stay ongoing for `polls` HEADs (None: immediate again)."""
    transition = {"progression": "immediate"} if polls is None else {
        "progression": "manual", "times": polls
    }  # fmt: skip
    body = json.dumps({"model_name": "s3::keyrestore", "transition": transition}).encode()
    url = f"{emulators['s3'].endpoint}/moto-api/state-manager/set-transition"
    urllib.request.urlopen(urllib.request.Request(url, body)).read()


@pytest.mark.parametrize("provider", ["file", "s3", "azure"])
def test_an_archived_backup_is_refused_then_restored_with_rehydrate(
    provider: str,
    cluster_factory: object,
    make_dest: Callable[..., TestDestination],
    pgvault_bin: str,
    emulators: dict[str, Emulator],
    tmp_path: Path,
) -> None:
    server = archived_server(cluster_factory, make_dest(provider), pgvault_bin)
    dest = server.dest
    server.cluster.sql("create table t (id int primary key, v text)")
    server.cluster.sql("insert into t select g, 'monthly' from generate_series(1, 5000) g")
    backup_id = server.backup()
    server.write_wal(2)
    expected = server.cluster.table_checksums()
    _move_to_archive(server, backup_id, tmp_path / "agent")
    env = {**dest.env, "PGVAULT_STATE_DIR": str(tmp_path / "state")}

    def run(*args: str) -> tuple[int, str, str]:
        done = pgvault(*args, env=env)
        return done.returncode, done.stdout, done.stderr

    with dest.store() as store:
        parts = archive_objects(store, SERVER, backup_id)
        assert parts and all(store.is_archived(o) for o in parts)
    code, out, err = run("backup-list", *dest.cli_args, dest.url, SERVER, "--format", "json")
    assert code == 0, err
    assert [e["pgvault"]["tier"] for e in json.loads(out)["backups_list"]] == ["archive"]
    code, out, err = run("backup-show", *dest.cli_args, dest.url, SERVER, backup_id)
    assert code == 0 and "Tier                   : archive" in out, err

    work = world_dir("pgvault-rehydrate-")
    data = f"{work}/data"
    restore = ("restore", "--pgvault-command", pgvault_bin, *dest.cli_args, dest.url, SERVER)
    try:
        code, _, err = run(*restore, backup_id, data)
        assert code == 1, err
        assert f"backup {backup_id} of {SERVER} is in the archive tier" in err
        assert "--rehydrate" in err and "Traceback" not in err
        code, _, err = run("verify", *dest.cli_args, dest.url, SERVER, backup_id)
        assert code == 1 and "must be rehydrated first" in err, err

        if provider == "s3":
            _moto_restores_take(emulators, 3)  # the job must poll, not find it done at once
        try:
            code, out, err = run(*restore, "--rehydrate", "--rehydrate-poll", "0.2", "latest", data)
        finally:
            if provider == "s3":
                _moto_restores_take(emulators, None)
        assert code == 0, err
        assert out.strip() == backup_id
        with JobStore.open(str(tmp_path / "state")) as jobs:
            kinds = [(j.kind, str(j.state)) for j in jobs.list_jobs()]
        assert ("rehydrate", "succeeded") in kinds and ("restore", "succeeded") in kinds, kinds
        with dest.store() as store:
            assert not store.exists(ServerLayout(SERVER).tier_annotation(backup_id))
            assert not any(store.is_archived(o) for o in archive_objects(store, SERVER, backup_id))
        code, out, err = run("backup-list", *dest.cli_args, dest.url, SERVER, "--format", "json")
        assert [e["pgvault"]["tier"] for e in json.loads(out)["backups_list"]] == ["standard"]

        cluster = start_restored(data, server.cluster.bindir, env=dest.env)
        try:
            wait_for_recovery_end(cluster)
            assert cluster.table_checksums() == expected
        finally:
            cluster.drop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_backup_rehydrate_alone_brings_it_back_and_says_so(
    cluster_factory: object,
    make_dest: Callable[..., TestDestination],
    pgvault_bin: str,
    tmp_path: Path,
) -> None:
    server = archived_server(cluster_factory, make_dest("file"), pgvault_bin)
    dest = server.dest
    backup_id = server.backup()
    _move_to_archive(server, backup_id, tmp_path / "agent")
    env = {**dest.env, "PGVAULT_STATE_DIR": str(tmp_path / "state")}
    args = ("backup-rehydrate", *dest.cli_args, dest.url, SERVER, backup_id)
    first = pgvault(*args, "--format", "json", env=env)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["rehydrated"] == [backup_id] and result["objects"] >= 1
    again = pgvault(*args, env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"backup {backup_id} is not archived: nothing to rehydrate"
    verified = pgvault("verify", *dest.cli_args, dest.url, SERVER, backup_id, env=env)
    assert verified.returncode == 0, verified.stderr
