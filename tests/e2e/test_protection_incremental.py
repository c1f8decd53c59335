"""A policy whose backup rule is Incremental, run by the agent on a real PostgreSQL: the
first slot of each ISO week takes a full backup and the others incrementals on its chain;
retention holds a backup while a kept incremental needs it, then deletes the whole chain
(its incrementals first); an incremental taken by the agent restores, starts and matches."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.catalog.reader import Catalog
from tests.e2e.test_protection_agent import Agent, pt1m_policy, require_password, set_up
from tests.support.catalog import SERVER, archived_server
from tests.support.destinations import TestDestination
from tests.support.pitr import new_target, restore, restored_server
from tests.support.postgres import Cluster, wait_for_recovery_end


def _set_up(agent: Agent, cluster: Cluster) -> None:
    policy = pt1m_policy()
    policy["policyRules"][0]["backupParameters"]["backupType"] = "Incremental"
    set_up(agent, cluster, policy)


def _parents(agent: Agent) -> dict[str, str | None]:
    with agent.dest.store() as store:
        return {i.backup_id: i.parent_backup_id for i in Catalog(store, SERVER).backups()}


def _retention(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(r["backupId"], r["action"], r["result"]) for r in report["retention"]]


def test_an_incremental_rule_chains_by_week_and_retention_keeps_what_a_chain_needs(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    tmp_path: Path,
) -> None:
    dest = make_dest("file")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    source = server.cluster
    require_password(source)
    agent = Agent(dest, tmp_path / "state")
    _set_up(agent, source)
    source.sql("create table ledger(id int primary key, note text)")
    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    second = timedelta(seconds=10)

    def slot(after: timedelta, rows: int) -> str:
        source.sql(
            f"insert into ledger select g, md5(g::text) from generate_series({rows}, {rows}+999) g"
        )
        (run,) = agent.once(base + after + second)["runs"]
        assert run["state"] == "succeeded", run
        return str(run["backupId"])

    b1 = slot(timedelta(0), 1)
    b2 = slot(timedelta(minutes=1), 1001)
    b3 = slot(timedelta(minutes=2), 2001)
    assert _parents(agent) == {b1: None, b2: b1, b3: b2}

    # minute 5: b2 (Default, PT3M, expired at minute 4) and b3 (at minute 5) are needed by
    # the chain's newest, b4: held, not deleted
    source.sql("insert into ledger select g, 'late' from generate_series(3001, 3500) g")
    late = agent.once(base + timedelta(minutes=5) + second)
    (run,) = late["runs"]
    b4 = run["backupId"]
    assert _parents(agent)[b4] == b3
    held = {r["backupId"]: r["reason"] for r in late["retention"] if r["result"] == "held"}
    assert set(held) == {b2, b3} and all(b4 in reason for reason in held.values()), held
    assert set(_parents(agent)) == {b1, b2, b3, b4}
    expected = source.table_checksums()

    target = new_target()
    try:
        restore(dest, target, b4, "--target-immediate", "--target-action", "promote")
        with restored_server(target, source.bindir) as restored:
            wait_for_recovery_end(restored)
            assert restored.table_checksums() == expected
    finally:
        target.drop()

    # eight days on, a new week: a full backup starts a new chain and the old one goes,
    # incrementals before the backups they build on
    week = agent.once(base + timedelta(days=8) + second)
    (run,) = week["runs"]
    b5 = run["backupId"]
    assert _parents(agent) == {b5: None}
    assert _retention(week) == [(b, "delete", "done") for b in (b4, b3, b2, b1)]
    assert agent.job_kinds() == ["backup"] * 5 + ["delete"] * 4
