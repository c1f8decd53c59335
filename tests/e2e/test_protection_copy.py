"""A backup instance's secondary destination: the agent copies each new backup there.

The PT1M policy's instance, backed up into a local directory, is given Azurite as its
secondary destination (`backup-instance update --secondary-destination`; a URL with a
credential in it is refused, nothing stored). The agent's slot runs a backup job and then a
copy job; the source's catalog records the copy; the copy is restored from Azurite with
the local directory deleted, PostgreSQL started on it and the rows compared.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.catalog.reader import Catalog
from tests.e2e.test_protection_agent import Agent, pt1m_policy, require_password, set_up
from tests.support.catalog import SERVER, archived_server
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.pitr import new_target, restore, restored_server
from tests.support.postgres import Cluster, wait_for_recovery_end


def test_the_agent_copies_each_new_backup_to_the_secondary_restored_there(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    tmp_path: Path,
) -> None:
    dest, azure = make_dest("file"), make_dest("azure")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    require_password(server.cluster)
    server.cluster.sql("create table probe as select g as id from generate_series(1, 777) g")
    agent = Agent(dest, tmp_path / "state")
    set_up(agent, server.cluster)

    leaky = f"{azure.url}?AZURE_ACCOUNT_KEY=topsecret-account-key"
    refused = pgvault(
        "backup-instance", "update", "--vault", "v1", "--name", SERVER,
        "--secondary-destination", leaky, env=agent.env,
    )  # fmt: skip
    assert refused.returncode == 3, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "environment" in refused.stderr
    assert "topsecret-account-key" not in refused.stderr
    updated = agent.run(
        "backup-instance", "update", "--vault", "v1", "--name", SERVER,
        "--secondary-destination", azure.url,
    )  # fmt: skip
    assert updated["secondaryDestination"] == azure.url
    shown = agent.run("backup-instance", "show", "--vault", "v1", "--name", SERVER)
    assert shown["secondaryDestination"] == azure.url

    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    report = agent.once(base + timedelta(seconds=10))
    assert report["errors"] == []
    [run] = report["runs"]
    backup = run["backupId"]
    assert run["state"] == "succeeded"
    assert run["secondaryCopy"]["state"] == "succeeded", run
    assert run["secondaryCopy"]["target"] == azure.url
    assert agent.job_kinds() == ["backup", "copy"]
    with azure.store() as store:
        assert [b.backup_id for b in Catalog(store, SERVER).backups()] == [backup]
    listed = pgvault("backup-list", dest.url, SERVER, "--format", "json")
    assert json.loads(listed.stdout)["backups_list"][0]["pgvault"]["copies"] == [azure.url]

    bindir = server.cluster.bindir
    server.cluster.drop()
    shutil.rmtree(dest.bucket)  # the primary region is lost
    target = new_target()
    try:
        restore(azure, target, backup)
        with restored_server(target, bindir) as restored:
            wait_for_recovery_end(restored)
            assert restored.one("select count(*) from probe") == 777
    finally:
        target.drop()


def _immediate_copy_policy() -> dict[str, Any]:
    """The PT1M policy whose every rule copies to ArchiveStore at once (ImmediateCopyOption)."""
    policy = pt1m_policy()
    store = {"objectType": "DataStoreInfoBase"}
    for rule in policy["policyRules"][1:]:
        vault_life = rule["lifecycles"][0]
        vault_life["targetDataStoreCopySettings"] = [
            {
                "copyAfter": {"objectType": "ImmediateCopyOption"},
                "dataStore": {**store, "dataStoreType": "ArchiveStore"},
            }
        ]
        rule["lifecycles"].append(
            {
                "deleteAfter": {"duration": "P30D", "objectType": "AbsoluteDeleteOption"},
                "sourceDataStore": {**store, "dataStoreType": "ArchiveStore"},
                "targetDataStoreCopySettings": [],
            }
        )
    return policy


def test_immediate_copy_option_makes_the_copy_a_failed_one_missed(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    tmp_path: Path,
) -> None:
    """The copy after the backup fails (the secondary container does not exist yet): the
    run says so and the pass fails; once it exists, the ImmediateCopyOption step copies it."""
    dest, azure = make_dest("file"), make_dest("azure", create=False)
    server = archived_server(cluster_factory, dest, pgvault_bin)
    require_password(server.cluster)
    agent = Agent(dest, tmp_path / "state")
    instance = set_up(agent, server.cluster, _immediate_copy_policy())
    agent.run(
        "backup-instance", "update", "--vault", "v1", "--name", instance["friendlyName"],
        "--secondary-destination", azure.url,
    )  # fmt: skip

    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    at = base + timedelta(seconds=10)
    first = pgvault("agent", "--once", "--vault", "v1", "--now", at.isoformat(), env=agent.env)
    assert first.returncode == 1, first.stderr
    # the copy's own lines are in its job log; each failed copy is said in one line
    said = first.stderr.strip().splitlines()
    assert [line.split(" (its log: ")[0] for line in said] == [
        f"ERROR: {SERVER}: the copy of backup {json.loads(first.stdout)[0]['runs'][0]['backupId']}"
        f" to {azure.url} failed: container {azure.bucket} does not exist"
    ] * 2, said
    [report] = json.loads(first.stdout)
    [run] = report["runs"]
    assert run["state"] == "succeeded" and run["secondaryCopy"]["state"] == "failed", run
    assert azure.bucket in run["secondaryCopy"]["error"]
    assert any("copy to" in e for e in report["errors"]), report["errors"]
    # the retention step tried too (same pass), and failed the same way
    assert [(r["action"], r["result"]) for r in report["retention"]] == [("copy", "failed")]

    # a pass with no slot due whose copy step fails again fails too (exit 1), told once
    retried = pgvault(
        "agent", "--once", "--vault", "v1", "--now", (at + timedelta(seconds=2)).isoformat(),
        env=agent.env,
    )  # fmt: skip
    assert retried.returncode == 1, retried.stderr
    [report] = json.loads(retried.stdout)
    assert report["runs"] == [] and report["errors"] == []
    assert [(r["action"], r["result"]) for r in report["retention"]] == [("copy", "failed")]
    assert len(retried.stderr.strip().splitlines()) == 1, retried.stderr

    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(
        azure.env["AZURE_STORAGE_CONNECTION_STRING"]
    ) as service:
        service.create_container(azure.bucket)
    second = agent.once(at + timedelta(seconds=5))
    assert second["runs"] == [] and second["errors"] == []
    assert [
        (r["backupId"], r["action"], r["result"], r["reason"]) for r in second["retention"]
    ] == [(run["backupId"], "copy", "done", f"copied to {azure.url}")]
    with azure.store() as store:
        assert [b.backup_id for b in Catalog(store, SERVER).backups()] == [run["backupId"]]
    third = agent.once(at + timedelta(seconds=20))
    [held] = third["retention"]
    assert held["result"] == "held" and f"a second copy is in {azure.url}" in held["reason"]
    assert agent.job_kinds() == ["backup", "copy", "copy", "copy", "copy"]
