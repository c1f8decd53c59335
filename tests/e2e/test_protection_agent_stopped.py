"""SIGTERM to the agent mid-backup: its backup job is cancelled as `jobs cancel` cancels
one, the run is recorded failed with the reason and marked interrupted (the claim is no
longer held), the agent exits with one line saying so, nothing half-written is listed
DONE, and the next pass runs the slot again as a fresh backup."""

from __future__ import annotations

import json
import signal
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.catalog.reader import Catalog
from tests.e2e.test_protection_abandoned_claim import set_archive_command, wait_for_phase
from tests.e2e.test_protection_agent import Agent, require_password, set_up
from tests.support.catalog import SERVER, archived_server
from tests.support.cli import spawn
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster

STOPPED = "the agent was stopped by SIGTERM"
WAITING = "WARNING: waiting for "  # ... to be archived: archive_command fails on ...


def test_sigterm_mid_backup_cancels_it_records_the_run_and_the_next_pass_runs_it_again(
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

    set_archive_command(server.cluster, "false")  # the backup waits for its WAL: still running
    first = spawn("agent", "--once", "--vault", "v1", "--now", base.isoformat(), env=agent.env)
    wait_for_phase(agent, "waiting for WAL archiving", first)
    first.terminate()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 1, (out, err)
    assert "Traceback" not in err
    # At the default verbosity the job's warning of why it waits, then one line for the
    # stop: what the job said once stopping is in its log (-v shows it).
    said = err.strip().splitlines()
    assert len(said) == 2 and said[0].startswith(WAITING), said
    assert said[1:] == [
        f"pgvault agent: {STOPPED}: cancelled the backup of {SERVER}, run again by the next pass"
    ]
    (run,) = json.loads(out)[0]["runs"]
    assert (run["slot"], run["state"], run["interrupted"]) == (base.isoformat(), "failed", STOPPED)
    assert run["error"] == f"cancelled: {STOPPED}"
    statuses = assert_stopped(agent, dest, run["jobId"], STOPPED)

    # the next pass takes the slot over and runs a fresh backup
    set_archive_command(server.cluster, archive_command)
    again = agent.once(base + timedelta(seconds=30))
    (rerun,) = again["runs"]
    assert (rerun["slot"], rerun["state"], rerun["interrupted"]) == (
        base.isoformat(),
        "succeeded",
        None,
    )
    assert STOPPED in rerun["abandonedClaim"]
    assert rerun["jobId"] != run["jobId"]
    assert rerun["backupId"] not in statuses
    assert agent.backups() == [rerun["backupId"]]
    shown = agent.run("backup-instance", "show", "--vault", "v1", "--name", SERVER)
    assert [(r["state"], r["backupId"]) for r in shown["runs"]] == [
        ("succeeded", rerun["backupId"])
    ]
    assert agent.once(base + timedelta(seconds=40))["runs"] == []  # once, not every pass


@pytest.mark.parametrize(
    ("sig", "verbose"),
    [(signal.SIGTERM, ()), (signal.SIGINT, ()), (signal.SIGHUP, ("-v",))],
    ids=["SIGTERM", "SIGINT", "SIGHUP-verbose"],
)
def test_a_signal_mid_adhoc_backup_cancels_it_and_records_the_run_failed(
    sig: signal.Signals,
    verbose: tuple[str, ...],
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    tmp_path: Path,
) -> None:
    """adhoc-backup stopped as the agent is: its job cancelled, its run failed (not left
    claimed for a pass to judge abandoned), one line (-v: after the job's own), exit 1;
    no pass runs it again."""
    dest = make_dest("file")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    require_password(server.cluster)
    agent = Agent(dest, tmp_path / "state")
    set_up(agent, server.cluster)
    (archive_command,) = server.cluster.sql("show archive_command")[0]
    set_archive_command(server.cluster, "false")  # the backup waits for its WAL: still running
    adhoc = ("backup-instance", "adhoc-backup", "--vault", "v1", "--name", SERVER)
    proc = spawn(*adhoc, "--rule-name", "Daily", *verbose, env=agent.env)
    wait_for_phase(agent, "waiting for WAL archiving", proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    stopped = f"adhoc-backup was stopped by {sig.name}"
    lines = err.strip().splitlines()
    assert lines[-1] == f"pgvault backup-instance: {stopped}: cancelled the backup of {SERVER}"
    # Why it waits is shown at every verbosity (the operator waiting on it must see that
    # archive_command fails); what the job says once stopping only at -v.
    waiting = [line for line in lines if line.startswith(WAITING)]
    assert waiting and "archive_command fails on" in waiting[0], lines
    if not verbose:
        assert lines == [waiting[0], lines[-1]]
    run = json.loads(out)
    assert (run["trigger"], run["state"], run["interrupted"]) == (
        "OnDemandBackup",
        "failed",
        stopped,
    )
    assert run["error"] == f"cancelled: {stopped}"
    assert_stopped(agent, dest, run["jobId"], stopped)
    # a pass neither judges it abandoned nor runs it again: the operator was told
    set_archive_command(server.cluster, archive_command)
    report = agent.once(datetime.now(UTC) + timedelta(minutes=2))
    assert [r for r in report["runs"] if r["trigger"] == "OnDemandBackup"] == []
    shown = agent.run("backup-instance", "show", "--vault", "v1", "--name", SERVER)
    adhoc_runs = [r for r in shown["runs"] if r["trigger"] == "OnDemandBackup"]
    assert [(r["state"], r["abandonedClaim"]) for r in adhoc_runs] == [("failed", None)]


def assert_stopped(agent: Agent, dest: TestDestination, job_id: str, reason: str) -> dict[str, str]:
    """The run failed with the reason and its claim released, its job cancelled as `jobs
    cancel` leaves it, no backup listed DONE; returns the catalog's statuses."""
    shown = agent.run("backup-instance", "show", "--vault", "v1", "--name", SERVER)
    (record,) = shown["runs"]
    assert (record["state"], record["jobId"], record["interrupted"]) == ("failed", job_id, reason)
    assert record["finished"] is not None
    with sqlite3.connect(agent.state / "jobs.db") as db:
        ((state, error),) = db.execute(
            "select state, error from jobs where id = ?", (int(job_id),)
        ).fetchall()
    assert (state, error) == ("cancelled", reason)
    with dest.store() as store:
        statuses = {i.backup_id: i.status for i in Catalog(store, SERVER).backups()}
    assert "DONE" not in statuses.values(), statuses
    return statuses
