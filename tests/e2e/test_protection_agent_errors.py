"""What one instance's or one vault's trouble does to the agent: it is that instance's (or
vault's) error, reported and notified, and the pass goes on with the others. Retention
windows past what Python can represent are refused at input."""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.protection.jsondoc import dumps
from tests.e2e.test_protection_agent import Agent, pt1m_policy, require_password, set_up
from tests.support.catalog import SERVER, archived_server
from tests.support.cli import pgvault, spawn
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster
from tests.support.receivers import webhook_server

LIMIT = "longer than 1000 years (P1000Y)"


def default_only(keep: str) -> dict[str, Any]:
    """The PT1M policy with one tag and rule, Default, kept `keep`."""
    policy = copy.deepcopy(pt1m_policy())
    rules = policy["policyRules"]
    rules[0]["trigger"]["taggingCriteria"] = rules[0]["trigger"]["taggingCriteria"][:1]
    rules[1]["lifecycles"][0]["deleteAfter"]["duration"] = keep
    policy["policyRules"] = rules[:2]
    return policy


def refused(result: Any, *needles: str) -> None:
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "unexpected error" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_retention_windows_past_year_9999_are_refused_at_input(
    make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    dest = make_dest("file")
    agent = Agent(dest, tmp_path / "state")
    agent.run("vault", "create", "v1", "--destination", dest.url)
    for count, unit in (("9999", "Years"), ("99999999", "Days"), ("2147483647", "Years")):
        result = pgvault(
            "policy", "retention-rule", "create-lifecycle", "--retention-duration-count", count,
            "--retention-duration-type", unit, "--source-datastore", "VaultStore", env=agent.env,
        )  # fmt: skip
        refused(result, f"--retention-duration-count {count}", LIMIT)
    kept = agent.run(
        "policy", "retention-rule", "create-lifecycle", "--retention-duration-count", "1000",
        "--retention-duration-type", "Years", "--source-datastore", "VaultStore",
    )  # fmt: skip
    assert kept["deleteAfter"]["duration"] == "P1000Y"

    forever = agent.file("forever.json", default_only("P9999Y"))
    path = "$.policyRules[1].lifecycles[0].deleteAfter.duration"
    create = ("policy", "create", "--vault", "v1", "--name", "forever", "--policy", forever)
    refused(pgvault(*create, env=agent.env), path, LIMIT)
    assert agent.run("policy", "list", "--vault", "v1") == []  # nothing stored
    simulate = ("policy", "simulate", "--policy", forever, "--from", "2026-12-01")
    refused(pgvault(*simulate, "--days", "10", env=agent.env), path, LIMIT)

    weekly = agent.file("weekly.json", default_only("P3M"))
    simulate = ("policy", "simulate", "--policy", weekly)
    too_long = pgvault(*simulate, "--from", "2026-12-01", "--days", "2147483647", env=agent.env)
    refused(too_long, "--days 2147483647", "past year 9999")
    too_late = pgvault(*simulate, "--from", "9999-12-01", "--days", "100", env=agent.env)
    refused(too_late, "--from 9999-12-01 --days 100", "past year 9999")


def test_an_instance_the_agent_cannot_handle_does_not_stop_the_others(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    tmp_path: Path,
) -> None:
    dest = make_dest("file")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    require_password(server.cluster)
    agent = Agent(dest, tmp_path / "state")
    agent.run("vault", "create", "v1", "--destination", dest.url)
    minutely = agent.file("minutely.json", default_only("PT3M"))
    agent.run("policy", "create", "--vault", "v1", "--name", "minutely", "--policy", minutely)
    # a P9999Y policy stored by an older pgvault, which did not refuse it
    with dest.store() as store:
        store.put_bytes(
            ".pgvault/vaults/v1/policies/forever.json", dumps(default_only("P9999Y")).encode()
        )
    conninfo = f"host=127.0.0.1 port={server.cluster.port} user=postgres dbname=postgres"
    for name, policy in (("a-forever", "forever"), ("b-main", "minutely")):
        instance = agent.run(
            "backup-instance", "initialize", "--datasource", conninfo, "--name", name,
            "--server-name", SERVER, "--policy", policy,
            "--secret-store-type", "env", "--secret-store-uri", "PGV_PASSWORD",
        )  # fmt: skip
        agent.run(
            "backup-instance", "create", "--vault", "v1",
            "--backup-instance", agent.file(f"{name}.json", instance),
        )  # fmt: skip
    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)

    with webhook_server() as hook:
        agent.run("vault", "update", "v1", "--notify", hook.url())
        passes = []
        for at in (base, base + timedelta(minutes=4)):
            result = pgvault(
                "agent", "--once", "--vault", "v1", "--now", at.isoformat(), env=agent.env
            )
            assert result.returncode == 1, result.stderr  # the pass failed, not the agent
            assert "Traceback" not in result.stderr
            passes.append(json.loads(result.stdout)[0])
    for report in passes:
        # each instance took its slot's backup; a-forever's retention is its error
        assert [(r["instance"], r["state"]) for r in report["runs"]] == [
            ("a-forever", "succeeded"),
            ("b-main", "succeeded"),
        ]
        assert len(report["errors"]) == 1
        assert report["errors"][0].startswith("a-forever: ")
        assert "year" in report["errors"][0]
    first_b = passes[0]["runs"][1]["backupId"]
    # b-main's retention ran after a-forever's failed: its first backup (PT3M) is gone
    assert [(r["instance"], r["backupId"], r["result"]) for r in passes[1]["retention"]] == [
        ("b-main", first_b, "done")
    ]
    assert first_b not in agent.backups()
    told = [p["json"]["title"] for p in hook.posts]
    # said once, though the error came back on the second pass
    assert told.count("pgvault: the agent could not protect a-forever") == 1, told
    assert [n["event"] for n in passes[0]["notifications"]].count("instance-failed") == 1

    # status shows the error no run record holds (the slots succeeded), until a pass that
    # handles the instance: here once it is moved to a policy it can apply
    def last_errors(*flags: str) -> Any:
        at = (base + timedelta(minutes=9)).isoformat()
        result = pgvault("status", "--vault", "v1", "--now", at, *flags, env=agent.env)
        assert result.returncode == 0, result.stderr
        if not flags:
            return result.stdout
        return {d["backupInstance"]: d["lastError"] for d in json.loads(result.stdout)}

    errors = last_errors("--format", "json")
    assert errors["b-main"] is None
    assert errors["a-forever"]["at"] == (base + timedelta(minutes=4)).isoformat()
    assert "year" in errors["a-forever"]["error"]
    assert "last pass failed at" in last_errors()
    agent.run(
        "backup-instance", "update", "--vault", "v1", "--name", "a-forever",
        "--policy", "minutely",
    )  # fmt: skip
    at = (base + timedelta(minutes=8)).isoformat()
    result = pgvault("agent", "--once", "--vault", "v1", "--now", at, env=agent.env)
    assert result.returncode == 0, result.stderr
    assert last_errors("--format", "json") == {"a-forever": None, "b-main": None}


def test_a_vault_whose_destination_is_gone_is_reported_and_the_others_go_on(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    tmp_path: Path,
) -> None:
    dest = make_dest("file")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    require_password(server.cluster)
    agent = Agent(dest, tmp_path / "state")
    set_up(agent, server.cluster)  # vault v1 and its instance
    gone = tmp_path / "mnt" / "destgone"  # an NFS mount, say, that is not mounted
    agent.run("vault", "create", "vgone", "--destination", gone.as_uri())
    shutil.rmtree(gone)
    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    unavailable = "vault 'vgone' is unavailable: there is no .pgvault/vaults/vgone/vault.json"

    result = pgvault("agent", "--once", "--now", base.isoformat(), env=agent.env)
    assert result.returncode == 1, result.stderr
    reports = {r["vault"]: r for r in json.loads(result.stdout)}
    assert len(reports["vgone"]["errors"]) == 1
    assert reports["vgone"]["errors"][0].startswith(unavailable)
    assert gone.as_uri() in reports["vgone"]["errors"][0]
    assert reports["v1"]["errors"] == []
    assert [r["state"] for r in reports["v1"]["runs"]] == ["succeeded"]

    status = agent.run("status", "--format", "json")  # a report: exit 0
    assert [(s["vault"], s["backupInstance"], s["health"]) for s in status] == [
        ("v1", SERVER, "healthy"),
        ("vgone", None, "unavailable"),
    ]
    assert status[1]["reason"].startswith(unavailable)
    checked = pgvault("status", "--check", env=agent.env)  # nothing is known of vgone's
    assert checked.returncode == 1, checked.stderr
    assert "unavailable" in checked.stdout and SERVER in checked.stdout

    # running forever, the agent goes on past the vault's error pass after pass
    forever = spawn("agent", "--vault", "vgone", "--interval", "1", env=agent.env)
    try:
        assert forever.stdout is not None
        passes = [json.loads(forever.stdout.readline()) for _ in range(2)]
    finally:
        forever.terminate()
        forever.communicate(timeout=60)
    assert [[r["errors"][0].startswith(unavailable) for r in p] for p in passes] == [[True], [True]]

    shown = pgvault("vault", "show", "vgone", env=agent.env)  # not bad input: it failed
    assert shown.returncode == 1 and unavailable in shown.stderr, shown.stderr
    # deleting it forgets this host's registration only: nothing there can be checked
    deleted = agent.run("vault", "delete", "vgone")
    assert (deleted["deleted"], deleted["forgotten"], deleted["objects"]) == ("vgone", True, 0)
    assert [v["name"] for v in agent.run("vault", "list")] == ["v1"]
    still = pgvault("vault", "delete", "v1", env=agent.env)  # read: its instance refuses it
    assert still.returncode == 3 and "still protects" in still.stderr, still.stderr


def _drop_bucket(dest: TestDestination) -> None:
    """The bucket or container deleted, with what it holds (an operator's cleanup)."""
    if dest.provider == "azure":
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient.from_connection_string(
            dest.env["AZURE_STORAGE_CONNECTION_STRING"]
        ) as service:
            service.delete_container(dest.bucket)
        return
    import boto3

    client = boto3.client("s3", endpoint_url=dest.config.endpoint_url, region_name="us-east-1")
    with contextlib.closing(client):
        listed = client.list_objects_v2(Bucket=dest.bucket).get("Contents", [])
        for item in listed:
            client.delete_object(Bucket=dest.bucket, Key=item["Key"])
        client.delete_bucket(Bucket=dest.bucket)


@pytest.mark.parametrize("provider", ["s3", "azure"])
def test_a_vault_whose_bucket_was_deleted_is_unavailable_and_forgotten(
    provider: str, make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    """A bucket (container) deleted under a vault is the vault gone, as a directory removed
    is: reported unavailable (exit 1, one line), and `vault delete` forgets it here."""
    dest = make_dest(provider)
    env = {**dest.env, "PGVAULT_STATE_DIR": str(tmp_path / "state")}
    created = pgvault("vault", "create", "vb", "--destination", dest.url, *dest.cli_args, env=env)
    assert created.returncode == 0, created.stderr
    _drop_bucket(dest)
    unavailable = "vault 'vb' is unavailable: "

    shown = pgvault("vault", "show", "vb", env=env)
    assert shown.returncode == 1, shown.stderr
    assert shown.stderr.startswith(f"pgvault vault: error: {unavailable}"), shown.stderr
    assert len(shown.stderr.strip().splitlines()) == 1
    result = pgvault("agent", "--once", env=env)
    assert result.returncode == 1, result.stderr
    [report] = json.loads(result.stdout)
    assert [e.startswith(unavailable) for e in report["errors"]] == [True]
    status = pgvault("status", "--format", "json", env=env)
    assert [s["health"] for s in json.loads(status.stdout)] == ["unavailable"]

    deleted = pgvault("vault", "delete", "vb", env=env)
    assert deleted.returncode == 0, deleted.stderr
    document = json.loads(deleted.stdout)
    assert (document["deleted"], document["forgotten"], document["objects"]) == ("vb", True, 0)
    listed = pgvault("vault", "list", env=env)
    assert json.loads(listed.stdout) == []
