"""The agent on a real PostgreSQL: a PT1M policy, `agent --once --now T` at chosen instants,
tagged backups taken as jobs, expired ones deleted, a missed stretch caught up once, two
racing agents running one slot once, the password read from its secret reference only,
and `status --check` going critical when the backups stop."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.catalog.reader import Catalog
from tests.support.catalog import SERVER, archived_server
from tests.support.cli import pgvault, spawn
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster, as_postgres
from tests.support.restore import run_barman

PASSWORD = "agent-pw-7c1e9d"


def pt1m_policy() -> dict[str, Any]:
    """Every minute; the first backup of a day is tagged Daily (kept a day), the others
    Default (kept three minutes)."""

    def lifecycle(duration: str) -> dict[str, Any]:
        return {
            "deleteAfter": {"duration": duration, "objectType": "AbsoluteDeleteOption"},
            "sourceDataStore": {"dataStoreType": "VaultStore", "objectType": "DataStoreInfoBase"},
            "targetDataStoreCopySettings": [],
        }

    return {
        "datasourceTypes": ["Microsoft.DBforPostgreSQL/servers/databases"],
        "objectType": "BackupPolicy",
        "policyRules": [
            {
                "backupParameters": {"backupType": "Full", "objectType": "AzureBackupParams"},
                "dataStore": {"dataStoreType": "VaultStore", "objectType": "DataStoreInfoBase"},
                "name": "BackupEveryMinute",
                "objectType": "AzureBackupRule",
                "trigger": {
                    "objectType": "ScheduleBasedTriggerContext",
                    "schedule": {
                        "repeatingTimeIntervals": ["R/2026-01-01T00:00:00+00:00/PT1M"],
                        "timeZone": "UTC",
                    },
                    "taggingCriteria": [
                        {
                            "isDefault": True,
                            "tagInfo": {"tagName": "Default"},
                            "taggingPriority": 99,
                        },
                        {
                            "criteria": [
                                {
                                    "absoluteCriteria": ["FirstOfDay"],
                                    "objectType": "ScheduleBasedBackupCriteria",
                                }
                            ],
                            "isDefault": False,
                            "tagInfo": {"tagName": "Daily"},
                            "taggingPriority": 25,
                        },
                    ],
                },
            },
            {
                "isDefault": True,
                "lifecycles": [lifecycle("PT3M")],
                "name": "Default",
                "objectType": "AzureRetentionRule",
            },
            {
                "isDefault": False,
                "lifecycles": [lifecycle("P1D")],
                "name": "Daily",
                "objectType": "AzureRetentionRule",
            },
        ],
    }


def require_password(cluster: Cluster) -> None:
    """TCP connections need the password; the fixtures' unix socket stays trusted."""
    cluster.sql(f"alter role postgres password '{PASSWORD}'")
    hba = (
        "local all all trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
        "host replication all 127.0.0.1/32 scram-sha-256\n"
    )
    as_postgres(["tee", os.path.join(cluster.data, "pg_hba.conf")], input=hba)
    cluster.pg_ctl("reload")


class Agent:
    """The operator's commands with one state directory (registry and job store)."""

    def __init__(self, dest: TestDestination, state: Path) -> None:
        self.dest = dest
        self.state = state
        self.env = {**dest.env, "PGVAULT_STATE_DIR": str(state), "PGV_PASSWORD": PASSWORD}

    def run(self, *args: str, code: int = 0) -> Any:
        result = pgvault(*args, env=self.env)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        return json.loads(result.stdout)

    def once(self, at: datetime) -> dict[str, Any]:
        reports = self.run("agent", "--once", "--vault", "v1", "--now", at.isoformat())
        assert [r["vault"] for r in reports] == ["v1"]
        return dict(reports[0])

    def file(self, name: str, document: object) -> str:
        path = self.state / name
        path.write_text(json.dumps(document))
        return str(path)

    def backups(self) -> list[str]:
        with self.dest.store() as store:
            return [i.backup_id for i in Catalog(store, SERVER).backups() if i.status == "DONE"]

    def job_kinds(self) -> list[str]:
        with sqlite3.connect(self.state / "jobs.db") as db:
            return [row[0] for row in db.execute("select kind from jobs order by id")]


def set_up(
    agent: Agent,
    cluster: Cluster,
    policy: dict[str, Any] | None = None,
    secret: tuple[str, str] = ("env", "PGV_PASSWORD"),
) -> dict[str, Any]:
    """Vault v1, a policy (the PT1M one by default) and the cluster's instance; the instance."""
    agent.run("vault", "create", "v1", "--destination", agent.dest.url, *agent.dest.cli_args)
    agent.run(
        "policy", "create", "--vault", "v1", "--name", "minutely",
        "--policy", agent.file("policy.json", policy or pt1m_policy()),
    )  # fmt: skip
    instance: dict[str, Any] = agent.run(
        "backup-instance", "initialize",
        "--datasource", f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres",
        "--server-name", SERVER, "--policy", "minutely",
        "--secret-store-type", secret[0], "--secret-store-uri", secret[1],
    )  # fmt: skip
    agent.run(
        "backup-instance", "create", "--vault", "v1",
        "--backup-instance", agent.file("instance.json", instance),
    )  # fmt: skip
    return instance


@pytest.mark.parametrize("provider", ["file", "s3"])
def test_agent_runs_slots_once_tags_them_and_deletes_the_expired(
    provider: str,
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    tmp_path: Path,
) -> None:
    dest = make_dest(provider)
    server = archived_server(cluster_factory, dest, pgvault_bin)
    require_password(server.cluster)
    agent = Agent(dest, tmp_path / "state")
    set_up(agent, server.cluster)
    # slots on whole minutes, after the instance was created (the injected clock runs ahead),
    # all on one day: the first of a day is tagged Daily (FirstOfDay), the next ones Default
    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    if (base + timedelta(minutes=10)).date() != base.date():  # past midnight: from it
        base = datetime.combine(base.date() + timedelta(days=1), time(0), UTC)
    second = timedelta(seconds=10)

    first = agent.once(base + second)
    assert [(r["slot"], r["state"], r["tag"]) for r in first["runs"]] == [
        (base.isoformat(), "succeeded", "Daily")
    ]
    b1 = first["runs"][0]["backupId"]
    assert agent.once(base + second)["runs"] == []  # the slot ran: nothing is due
    b2 = agent.once(base + timedelta(minutes=1) + second)["runs"][0]["backupId"]
    server.write_wal(1)
    # minutes 2, 3 and 4 missed: one catch-up run for the latest slot, not three
    late = agent.once(base + timedelta(minutes=5) + second)
    assert [(r["slot"], r["tag"]) for r in late["runs"]] == [
        ((base + timedelta(minutes=5)).isoformat(), "Default")
    ]
    b3 = late["runs"][0]["backupId"]
    # b2 (Default, PT3M) expired at minute 4; b1 is Daily (P1D)
    assert [(r["backupId"], r["action"], r["result"]) for r in late["retention"]] == [
        (b2, "delete", "done")
    ]
    assert agent.backups() == [b1, b3]
    assert agent.job_kinds() == ["backup", "backup", "backup", "delete"]

    # two agents racing on one slot: it runs once
    racing = base + timedelta(minutes=6) + second
    args = ("agent", "--once", "--vault", "v1", "--now", racing.isoformat())
    procs = [spawn(*args, env=agent.env) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ran = [
        r
        for out, _ in outputs
        for r in json.loads(out)[0]["runs"]
        if r["state"] != "claimed-elsewhere"
    ]
    assert len(ran) == 1, outputs
    assert len(agent.backups()) == 3
    assert agent.job_kinds().count("backup") == 4

    shown = agent.run("backup-instance", "show", "--vault", "v1", "--name", SERVER)
    assert [(r["state"], r["tag"]) for r in shown["runs"]] == [
        ("succeeded", "Daily"),
        ("succeeded", "Default"),
        ("succeeded", "Default"),
        ("succeeded", "Default"),
    ]
    # the password lives in the environment only: not in the vault, the job store or output
    with dest.store() as store:
        for item in store.list_objects(".pgvault/"):
            assert PASSWORD.encode() not in store.get_bytes(item.key), item.key
    assert PASSWORD.encode() not in (agent.state / "jobs.db").read_bytes()
    assert PASSWORD not in json.dumps(shown)

    # RPO is the age of the newest backup's real end: asked now, it is seconds old
    status = agent.run("status", "--format", "json")
    assert [(s["backupInstance"], s["health"]) for s in status] == [(SERVER, "healthy")]
    assert status[0]["lastBackupId"] == ran[0]["backupId"]
    assert isinstance(status[0]["walArchiveLagSeconds"], int)  # the server archives its WAL
    assert status[0]["rpoSeconds"] <= status[0]["walArchiveLagSeconds"]
    assert status[0]["thresholds"] == {"criticalAfterSeconds": 120, "warningAfterSeconds": 90}
    stale = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    result = pgvault("status", "--check", "--now", stale, env=agent.env)
    assert result.returncode == 1, result.stderr
    assert "critical" in result.stdout

    adhoc = agent.run(
        "backup-instance", "adhoc-backup", "--vault", "v1", "--name", SERVER,
        "--rule-name", "Daily",
    )  # fmt: skip
    assert (adhoc["trigger"], adhoc["tag"], adhoc["state"]) == (
        "OnDemandBackup",
        "Daily",
        "succeeded",
    )
    assert adhoc["backupId"] in agent.backups()
    wrong = pgvault(
        "backup-instance", "adhoc-backup", "--vault", "v1", "--name", SERVER,
        "--rule-name", "Hourly", env=agent.env,
    )  # fmt: skip
    assert wrong.returncode == 3
    assert "the policy's rules are BackupEveryMinute, Default, Daily" in wrong.stderr
    agent.run("backup-instance", "stop-protection", "--vault", "v1", "--name", SERVER)
    assert agent.once(racing + timedelta(minutes=1))["runs"] == []
    # Azure refuses an on-demand backup of a stopped instance: a state error, nothing run
    stopped = pgvault(
        "backup-instance", "adhoc-backup", "--vault", "v1", "--name", SERVER,
        "--rule-name", "Daily", env=agent.env,
    )  # fmt: skip
    assert (stopped.returncode, stopped.stdout) == (1, ""), stopped.stderr
    assert stopped.stderr.strip().splitlines() == [
        f"pgvault backup-instance: error: backup instance {SERVER} of vault v1 is "
        "ProtectionStopped: an "
        "on-demand backup needs protection resumed first (backup-instance resume-protection "
        f"--vault v1 --name {SERVER})"
    ]
    assert agent.job_kinds().count("backup") == 5
    assert len(agent.run("backup-instance", "show", "--vault", "v1", "--name", SERVER)["runs"]) == 5
    if provider == "s3":  # barman-cloud reads the catalog the vault shares its bucket with
        listed = run_barman("backup-list", dest, "--format", "json", dest.url, SERVER)
        ids = [b["backup_id"] for b in json.loads(listed.stdout)["backups_list"]]
        assert ids == agent.backups()
        assert len(ids) == 4


def test_a_missing_password_fails_the_run_and_records_it(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    tmp_path: Path,
) -> None:
    dest = make_dest("file")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    require_password(server.cluster)
    agent = Agent(dest, tmp_path / "state")
    set_up(agent, server.cluster)
    del agent.env["PGV_PASSWORD"]
    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    result = pgvault("agent", "--once", "--vault", "v1", "--now", base.isoformat(), env=agent.env)
    assert result.returncode == 1, result.stderr
    runs = json.loads(result.stdout)[0]["runs"]
    assert [(r["state"], r["jobId"]) for r in runs] == [("failed", None)]
    assert "PGV_PASSWORD" in runs[0]["error"]
    assert result.stderr.splitlines() == [f"ERROR: {SERVER}: the backup failed: {runs[0]['error']}"]
    assert agent.backups() == []
    # a job that fails: one line naming its log, where the job's own lines are
    agent.env["PGV_PASSWORD"] = "not-" + PASSWORD
    for minute, verbose in ((1, ()), (2, ("-v",))):
        at = (base + timedelta(minutes=minute)).isoformat()
        result = pgvault("agent", "--once", "--vault", "v1", "--now", at, *verbose, env=agent.env)
        assert result.returncode == 1, result.stderr
        (run,) = json.loads(result.stdout)[0]["runs"]
        assert (run["state"], "password authentication failed" in run["error"]) == ("failed", True)
        said = (
            f"the backup failed: {run['error']} (its log: pgvault --batch jobs log {run['jobId']})"
        )
        lines = result.stderr.splitlines()
        assert f"ERROR: {SERVER}: {said}" in lines, lines
        assert verbose or len(lines) == 1, lines
        logged = pgvault("jobs", "log", run["jobId"], env=agent.env)
        assert "password authentication failed" in logged.stdout, logged
