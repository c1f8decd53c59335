"""A slot claimed by an agent killed mid-backup (SIGKILL, a reboot) is not lost: the next
pass proves the holder gone (its process no longer runs on this host, as a backup's lease
is judged), takes the claim over once, however many agents race for it, runs the slot
again and tells the operator. The backup is held up by WAL the server cannot archive."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.test_protection_agent import Agent, require_password, set_up
from tests.support.catalog import SERVER, archived_server
from tests.support.cli import spawn
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster
from tests.support.receivers import webhook_server


def set_archive_command(cluster: Cluster, command: str) -> None:
    cluster.sql("alter system set archive_command = %s", (command,))
    cluster.sql("select pg_reload_conf()")


def wait_for_phase(agent: Agent, phase: str, proc: object) -> None:
    """Until the agent's backup job shows `phase` (the agent must still be running)."""
    deadline = time.monotonic() + 180
    rows: list[tuple[str]] = []
    while True:
        try:  # read-only: the agent creates the job store
            with sqlite3.connect(f"file:{agent.state / 'jobs.db'}?mode=ro", uri=True) as db:
                rows = db.execute("select phase from jobs where state = 'running'").fetchall()
        except sqlite3.OperationalError:  # not created yet
            pass
        if any(row[0].startswith(phase) for row in rows):
            return
        assert proc.poll() is None, proc.communicate()  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, f"the backup never reached {phase!r}: {rows}"
        time.sleep(0.2)


def test_a_slot_whose_agent_was_killed_mid_backup_is_taken_over_once_and_told(
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
    (archive_command,) = server.cluster.sql("show archive_command")[0]
    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)

    with webhook_server() as hook:
        agent.run("vault", "update", "v1", "--notify", hook.url())
        set_archive_command(server.cluster, "false")  # the backup's WAL is never archived
        first = spawn("agent", "--once", "--vault", "v1", "--now", base.isoformat(), env=agent.env)
        wait_for_phase(agent, "waiting for WAL archiving", first)
        first.kill()  # SIGKILL: no chance to record anything
        first.communicate(timeout=60)
        shown = agent.run("backup-instance", "show", "--vault", "v1", "--name", SERVER)
        assert [(r["state"], r["jobId"], r["finished"]) for r in shown["runs"]] == [
            ("claimed", None, None)
        ]
        killed_by = shown["runs"][0]["claimedBy"]
        set_archive_command(server.cluster, archive_command)

        # two agents race to take the slot over: one runs it again, the other leaves it
        later = (base + timedelta(seconds=30)).isoformat()
        racing = [
            spawn("agent", "--once", "--vault", "v1", "--now", later, env=agent.env)
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=600) for p in racing]
        assert [p.returncode for p in racing] == [0, 0], outputs
        ran = [run for out, _ in outputs for run in json.loads(out)[0]["runs"]]
        assert [(r["slot"], r["state"]) for r in ran] == [(base.isoformat(), "succeeded")]
        host, pid = killed_by.rsplit(":", 1)
        assert ran[0]["abandonedClaim"] == (
            f"claimed by {killed_by}: pgvault process {pid} on {host} is gone"
        )
        assert ran[0]["backupId"] in agent.backups()
        shown = agent.run("backup-instance", "show", "--vault", "v1", "--name", SERVER)
        assert [(r["state"], r["backupId"]) for r in shown["runs"]] == [
            ("succeeded", ran[0]["backupId"])
        ]
        # nothing left to take over or run: the slot ran once more, not once per pass
        assert agent.once(base + timedelta(seconds=40))["runs"] == []
    told = [p["json"]["title"] for p in hook.posts]
    assert told.count(f"pgvault: backup of {SERVER} was abandoned mid-way") == 1, told
    (body,) = [p["json"]["message"] for p in hook.posts if "abandoned" in p["json"]["title"]]
    # sent by whichever agent saw it first: the one running it again, or the other meanwhile
    assert f"was claimed by {killed_by}: pgvault process {pid} on {host} is gone" in body
    assert "The slot was taken over by " in body
