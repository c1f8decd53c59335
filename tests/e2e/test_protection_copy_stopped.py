"""A stop signal while a finished backup is copied to the instance's secondary destination:
the copy job is cancelled as `jobs cancel` cancels one, the run stays SUCCEEDED (the backup
is DONE) with `copyInterrupted` giving the reason, nothing the copy left is listed as a copy
(neither in the source's copies record nor DONE in the secondary), the command says it in
one line and exits 1; the next pass makes the copy, which is restored from the secondary.

The copy is held mid-way by a proxy in front of Azurite that stalls its first object write
for a few seconds: the signal comes while the copy job is running, whatever its speed.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from core.catalog.copies import read_copies
from core.catalog.reader import Catalog
from tests.e2e.test_protection_agent import Agent, require_password, set_up
from tests.e2e.test_protection_copy import _immediate_copy_policy
from tests.support.catalog import SERVER, archived_server
from tests.support.cli import spawn
from tests.support.destinations import TestDestination
from tests.support.emulators import Emulator
from tests.support.fault_proxy import Fault, FaultProxy, Request, Script, Step, through_proxy
from tests.support.pitr import new_target, restore, restored_server
from tests.support.postgres import Cluster, wait_for_recovery_end

STALL = 6.0


def _blob_write(request: Request) -> bool:
    """An object written to Azurite (Put Blob or Put Block), not a container's creation."""
    return request.method == "PUT" and "restype=" not in request.query


def _wait_for_stalled_copy(proxy: FaultProxy, agent: Agent, proc: Any, nth: int = 1) -> str:
    """Until the `nth` copy job runs and its first write is held; its ID."""
    deadline = time.monotonic() + 180
    while Fault.STALL not in proxy.faults():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the copy never wrote to the secondary"
        time.sleep(0.1)
    with sqlite3.connect(f"file:{agent.state / 'jobs.db'}?mode=ro", uri=True) as db:
        copies = db.execute("select id, state from jobs where kind = 'copy' order by id")
        job_id, state = copies.fetchall()[nth - 1]
    assert state == "running"
    return str(job_id)


def _job(agent: Agent, job_id: str) -> tuple[str, str]:
    with sqlite3.connect(agent.state / "jobs.db") as db:
        ((state, error),) = db.execute(
            "select state, error from jobs where id = ?", (int(job_id),)
        ).fetchall()
    return state, error


def _nothing_listed(dest: TestDestination, azure: TestDestination, backup: str) -> None:
    with dest.store() as store:
        assert read_copies(store, SERVER).get(backup, ()) == ()
    with azure.store() as store:
        assert [b.backup_id for b in Catalog(store, SERVER).backups() if b.is_done] == []


def _stopped_setup(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    emulators: dict[str, Emulator],
    tmp_path: Any,
    policy: dict[str, Any] | None,
    proxy: FaultProxy,
    create: bool = True,
) -> tuple[Cluster, Agent, TestDestination, TestDestination, TestDestination]:
    """A cluster archiving into a local vault whose instance copies to Azurite through the
    proxy: the cluster, the operator, the vault's destination, Azurite, and it proxied."""
    dest, azure = make_dest("file"), make_dest("azure", create=create)
    server = archived_server(cluster_factory, dest, pgvault_bin)
    require_password(server.cluster)
    server.cluster.sql("create table probe as select g as id from generate_series(1, 555) g")
    agent = Agent(dest, tmp_path / "state")
    instance = set_up(agent, server.cluster, policy) if policy else set_up(agent, server.cluster)
    proxied = through_proxy(azure, emulators, proxy)
    agent.env.update(proxied.env)
    agent.run(
        "backup-instance", "update", "--vault", "v1", "--name", instance["friendlyName"],
        "--secondary-destination", proxied.url,
    )  # fmt: skip
    return server.cluster, agent, dest, azure, proxied


def the_copy_restores(
    cluster: Cluster,
    dest: TestDestination,
    direct: TestDestination,
    azure: TestDestination,
    backup: str,
) -> None:
    """The copy is listed; with the primary lost, it restores and starts with the rows."""
    with dest.store() as store:
        assert read_copies(store, SERVER)[backup] == (azure.url,)
    bindir = cluster.bindir
    cluster.drop()
    shutil.rmtree(dest.bucket)  # the primary is lost: the copy restores
    target = new_target()
    try:
        restore(direct, target, backup)
        with restored_server(target, bindir) as restored:
            wait_for_recovery_end(restored)
            assert restored.one("select count(*) from probe") == 555
    finally:
        target.drop()


def test_sigterm_mid_copy_cancels_it_and_the_next_pass_makes_it(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    emulators: dict[str, Emulator],
    tmp_path: Any,
) -> None:
    """The agent under a policy that copies at once (ImmediateCopyOption): stopped mid-copy,
    then the next pass makes the copy once (the retention copy step finds it recorded)."""
    with FaultProxy(
        emulators["azure"].port, Script([Step(_blob_write, Fault.STALL)]), STALL
    ) as proxy:
        cluster, agent, dest, direct, azure = _stopped_setup(
            make_dest, cluster_factory, pgvault_bin, emulators, tmp_path,
            _immediate_copy_policy(), proxy,
        )  # fmt: skip
        base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
        at = base + timedelta(seconds=10)
        proc = spawn("agent", "--once", "--vault", "v1", "--now", at.isoformat(), env=agent.env)
        copy_job = _wait_for_stalled_copy(proxy, agent, proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, (out, err)
        [report] = json.loads(out)
        [run] = report["runs"]
        backup, stopped = run["backupId"], "the agent was stopped by SIGTERM"
        assert err.strip().splitlines() == [
            f"pgvault agent: {stopped}: cancelled the copy of backup {backup} of {SERVER} "
            f"to {azure.url}, made by the next pass"
        ]
        assert (run["state"], run["interrupted"], run["copyInterrupted"]) == (
            "succeeded",
            None,
            stopped,
        )
        assert run["secondaryCopy"]["interrupted"] == stopped
        assert run["secondaryCopy"]["error"] == f"cancelled: {stopped}"
        assert report["retention"] == []  # nothing more was started
        assert agent.backups() == [backup]
        assert _job(agent, copy_job) == ("cancelled", stopped)
        _nothing_listed(dest, azure, backup)
        shown = agent.run("backup-instance", "show", "--vault", "v1", "--name", SERVER)
        assert [r["copyInterrupted"] for r in shown["runs"]] == [stopped]

        again = agent.once(at + timedelta(seconds=5))
        assert again["errors"] == []
        [redone] = again["runs"]
        assert (redone["backupId"], redone["state"], redone["copyInterrupted"]) == (
            backup,
            "succeeded",
            None,
        )
        assert redone["secondaryCopy"]["state"] == "succeeded"
        assert [(r["action"], r["result"]) for r in again["retention"]] == [("copy", "held")]
        assert agent.job_kinds() == ["backup", "copy", "copy"]
        assert agent.once(at + timedelta(seconds=20))["runs"] == []  # once, not every pass

    the_copy_restores(cluster, dest, direct, azure, backup)


def test_sigint_mid_adhoc_copy_cancels_it_and_the_next_pass_makes_it(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    emulators: dict[str, Emulator],
    tmp_path: Any,
) -> None:
    """adhoc-backup under a policy without a copy rule: stopped mid-copy it says so in one
    line and exits 1; the next agent pass makes that copy (no slot due), once."""
    with FaultProxy(
        emulators["azure"].port, Script([Step(_blob_write, Fault.STALL)]), STALL
    ) as proxy:
        _, agent, dest, _, azure = _stopped_setup(
            make_dest, cluster_factory, pgvault_bin, emulators, tmp_path, None, proxy
        )
        adhoc = ("backup-instance", "adhoc-backup", "--vault", "v1", "--name", SERVER)
        proc = spawn(*adhoc, "--rule-name", "Daily", env=agent.env)
        copy_job = _wait_for_stalled_copy(proxy, agent, proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, (out, err)
        run, stopped = json.loads(out), "adhoc-backup was stopped by SIGINT"
        backup = run["backupId"]
        assert err.strip().splitlines() == [
            f"pgvault backup-instance: {stopped}: cancelled the copy of backup {backup} of "
            f"{SERVER} to {azure.url}, made by the next agent pass"
        ]
        assert (run["state"], run["copyInterrupted"]) == ("succeeded", stopped)
        assert _job(agent, copy_job) == ("cancelled", stopped)
        assert agent.backups() == [backup]
        _nothing_listed(dest, azure, backup)

        before = datetime.now(UTC) - timedelta(minutes=5)  # no slot is due yet
        again = agent.once(before)
        assert again["errors"] == []
        [redone] = again["runs"]
        assert (redone["trigger"], redone["backupId"], redone["copyInterrupted"]) == (
            "OnDemandBackup",
            backup,
            None,
        )
        assert redone["secondaryCopy"]["state"] == "succeeded"
        assert agent.once(before)["runs"] == []
        assert agent.job_kinds() == ["backup", "copy", "copy"]
    with dest.store() as store:
        assert read_copies(store, SERVER)[backup] == (azure.url,)


def test_sigterm_mid_retention_copy_step_cancels_it_and_the_next_pass_makes_it(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    emulators: dict[str, Emulator],
    tmp_path: Any,
) -> None:
    """The copy a policy's ImmediateCopyOption step makes again (the one after the backup
    failed: no container yet), stopped mid-way: the step is reported failed and cancelled,
    one line names it, exit 1; the next pass's step makes it."""
    with FaultProxy(
        emulators["azure"].port, Script([Step(_blob_write, Fault.STALL)]), STALL
    ) as proxy:
        _, agent, dest, direct, azure = _stopped_setup(
            make_dest, cluster_factory, pgvault_bin, emulators, tmp_path,
            _immediate_copy_policy(), proxy, create=False,
        )  # fmt: skip
        base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
        at = base + timedelta(seconds=10)
        agent.run("agent", "--once", "--vault", "v1", "--now", at.isoformat(), code=1)
        assert proxy.faults() == []  # nothing was written: the container did not exist
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient.from_connection_string(
            direct.env["AZURE_STORAGE_CONNECTION_STRING"]
        ) as service:
            service.create_container(direct.bucket)
        [backup] = agent.backups()

        later = (at + timedelta(seconds=5)).isoformat()
        proc = spawn("agent", "--once", "--vault", "v1", "--now", later, env=agent.env)
        copy_job = _wait_for_stalled_copy(proxy, agent, proc, nth=3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, (out, err)
        stopped = "the agent was stopped by SIGTERM"
        assert err.strip().splitlines() == [
            f"pgvault agent: {stopped}: cancelled the copy of backup {backup} of {SERVER}, "
            "made by the next pass"
        ]
        [report] = json.loads(out)
        assert report["runs"] == []
        assert [(r["action"], r["result"], r["reason"]) for r in report["retention"]] == [
            ("copy", "failed", f"cancelled: {stopped}; the next pass makes it")
        ]
        assert _job(agent, copy_job) == ("cancelled", stopped)
        _nothing_listed(dest, azure, backup)

        again = agent.once(at + timedelta(seconds=20))
        assert again["errors"] == []
        assert [(r["backupId"], r["action"], r["result"]) for r in again["retention"]] == [
            (backup, "copy", "done")
        ]
    with dest.store() as store:
        assert read_copies(store, SERVER)[backup] == (azure.url,)
