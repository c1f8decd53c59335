"""A policy whose backup rule is Logical: the agent dumps the datasource's database at each
slot, tags it, and the rule's retention deletes the expired logical backups."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.logical.catalog import list_logical
from tests.e2e.test_protection_agent import Agent, pt1m_policy, require_password
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.logical import BINDIRS_ENV, make_shop
from tests.support.postgres import Cluster

SERVER = "logical-db"
DATABASE = "shop"


def _logical_policy() -> dict[str, object]:
    policy = pt1m_policy()
    policy["policyRules"][0]["backupParameters"]["backupType"] = "Logical"
    return policy


def _set_up(agent: Agent, pg: Cluster, dbname: str) -> None:
    agent.run("vault", "create", "v1", "--destination", agent.dest.url, *agent.dest.cli_args)
    agent.run(
        "policy", "create", "--vault", "v1", "--name", "dumps",
        "--policy", agent.file("policy.json", _logical_policy()),
    )  # fmt: skip
    instance = agent.run(
        "backup-instance", "initialize",
        "--datasource", f"host=127.0.0.1 port={pg.port} user=postgres {dbname}",
        "--server-name", SERVER, "--policy", "dumps",
        "--secret-store-type", "env", "--secret-store-uri", "PGV_PASSWORD",
    )  # fmt: skip
    agent.run(
        "backup-instance", "create", "--vault", "v1",
        "--backup-instance", agent.file("instance.json", instance),
    )  # fmt: skip


def _logical_ids(dest: TestDestination) -> list[str]:
    with dest.store() as store:
        return [m.backup_id for m in list_logical(store, SERVER)]


def _job_kinds(agent: Agent) -> list[str]:
    with sqlite3.connect(agent.state / "jobs.db") as db:
        return [row[0] for row in db.execute("select kind from jobs order by id")]


def test_a_logical_rule_dumps_the_database_and_its_retention_deletes_them(
    pg: Cluster, make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    make_shop(pg, DATABASE)
    require_password(pg)
    dest = make_dest("file")
    agent = Agent(dest, tmp_path / "state")
    agent.env.update(BINDIRS_ENV)
    _set_up(agent, pg, f"dbname={DATABASE}")
    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    second = timedelta(seconds=10)

    first = agent.once(base + second)
    assert [(r["state"], r["tag"]) for r in first["runs"]] == [("succeeded", "Daily")], first
    b1 = first["runs"][0]["backupId"]
    b2 = agent.once(base + timedelta(minutes=1) + second)["runs"][0]["backupId"]
    pg.sql(
        "insert into sales.customers (name) values ('after b2');"
        " refresh materialized view sales.customer_count",  # a restore refreshes it too
        dbname=DATABASE,
    )
    late = agent.once(base + timedelta(minutes=5) + second)
    (run,) = late["runs"]
    b3 = run["backupId"]
    assert [b.endswith("L") for b in (b1, b2, b3)] == [True, True, True]
    # b2 (Default, PT3M) expired at minute 4; b1 is Daily (P1D)
    assert [(r["backupId"], r["action"], r["result"]) for r in late["retention"]] == [
        (b2, "delete", "done")
    ]
    assert _logical_ids(dest) == [b1, b3]
    assert set(_job_kinds(agent)) == {"logical-backup"}

    # the newest dump holds the row written after b2: restore it and compare
    restored = pgvault(
        "restore", dest.url, SERVER, b3, *pg.restore_flags(), "--new-db-name", "from_policy",
        env=BINDIRS_ENV,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert pg.table_checksums("from_policy") == pg.table_checksums(DATABASE)

    # RPO is the newest dump's end: WAL archived under the same server name (as a physical
    # setup would) does not replay onto a dump
    with dest.store() as store:
        store.put_bytes(f"{SERVER}/wals/0000000100000000/000000010000000000000001", b"wal")
    status = agent.run("status", "--format", "json")
    assert [(s["backupInstance"], s["health"]) for s in status] == [(SERVER, "healthy")]
    assert status[0]["lastBackupId"] == b3 and status[0]["walArchiveLagSeconds"] is None

    adhoc = agent.run(
        "backup-instance", "adhoc-backup", "--vault", "v1", "--name", SERVER,
        "--rule-name", "Daily",
    )  # fmt: skip
    assert (adhoc["tag"], adhoc["state"]) == ("Daily", "succeeded")
    assert adhoc["backupId"] in _logical_ids(dest)


def test_a_logical_rule_needs_the_datasource_database(
    pg: Cluster, make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    require_password(pg)
    agent = Agent(make_dest("file"), tmp_path / "state")
    _set_up(agent, pg, "")
    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    result = pgvault("agent", "--once", "--vault", "v1", "--now", base.isoformat(), env=agent.env)
    assert result.returncode == 1, result.stderr
    (run,) = json.loads(result.stdout)[0]["runs"]
    assert run["state"] == "failed" and "add dbname=NAME" in run["error"], run
