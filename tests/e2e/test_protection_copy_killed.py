"""An agent killed outright (SIGKILL, a host crash) while a finished backup is copied to
the instance's secondary destination: the run stays `succeeded`, and its copy was started
but never recorded as ended. `backup-instance show` shows that copy not made (the process
making it is gone, judged as the job store judges a job's), and the next pass makes it,
once, whatever the policy's copy rules; the copy is restored and PostgreSQL starts on it.

The copy is held mid-way by a proxy in front of Azurite that stalls its first object write
(tests/e2e/test_protection_copy_stopped.py): the kill comes while the copy job runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from core.catalog.copies import read_copies
from tests.e2e.test_protection_copy import _immediate_copy_policy
from tests.e2e.test_protection_copy_stopped import (
    STALL,
    _blob_write,
    _job,
    _nothing_listed,
    _stopped_setup,
    _wait_for_stalled_copy,
    the_copy_restores,
)
from tests.support.catalog import SERVER
from tests.support.cli import PGVAULT
from tests.support.destinations import TestDestination
from tests.support.emulators import Emulator
from tests.support.fault_proxy import Fault, FaultProxy, Script, Step
from tests.support.postgres import Cluster


def _spawn_group(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`pgvault --batch ARGS...` in a process group of its own, to kill it with its children."""
    return subprocess.Popen(
        [PGVAULT, "--batch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        start_new_session=True,
    )


def _kill(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while True:  # nothing of the group is left running
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, "the agent's children outlived it"
        time.sleep(0.1)


def test_sigkill_mid_copy_leaves_it_unmade_and_the_next_pass_makes_it(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    emulators: dict[str, Emulator],
    tmp_path: Any,
) -> None:
    """The agent under a policy that copies at once, killed mid-copy: the next pass makes
    the copy once (fails on the old code: the run said succeeded, no pass made the copy)."""
    with FaultProxy(
        emulators["azure"].port, Script([Step(_blob_write, Fault.STALL)]), STALL
    ) as proxy:
        cluster, agent, dest, direct, azure = _stopped_setup(
            make_dest, cluster_factory, pgvault_bin, emulators, tmp_path,
            _immediate_copy_policy(), proxy,
        )  # fmt: skip
        base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
        at = base + timedelta(seconds=10)
        proc = _spawn_group(
            "agent", "--once", "--vault", "v1", "--now", at.isoformat(), env=agent.env
        )
        copy_job = _wait_for_stalled_copy(proxy, agent, proc)
        _kill(proc)
        [backup] = agent.backups()
        _nothing_listed(dest, azure, backup)

        shown = agent.run("backup-instance", "show", "--vault", "v1", "--name", SERVER)
        [run] = shown["runs"]
        assert (run["state"], run["backupId"], run["interrupted"]) == ("succeeded", backup, None)
        assert run["copyStarted"]["pid"] == proc.pid
        killed = f"killed: the process making the copy (pid {proc.pid} on "
        assert run["copyInterrupted"].startswith(killed), run

        again = agent.once(at + timedelta(seconds=5))
        assert again["errors"] == []
        [redone] = again["runs"]
        assert (redone["backupId"], redone["state"], redone["copyInterrupted"]) == (
            backup,
            "succeeded",
            None,
        )
        assert redone["copyStarted"] is None
        assert redone["secondaryCopy"]["state"] == "succeeded"
        assert [(r["action"], r["result"]) for r in again["retention"]] == [("copy", "held")]
        assert agent.job_kinds() == ["backup", "copy", "copy"]
        state, error = _job(agent, copy_job)  # the killed copy job is marked failed
        assert state == "failed" and "the job's process died" in error, error
        assert agent.once(at + timedelta(seconds=20))["runs"] == []  # once, not every pass
        shown = agent.run("backup-instance", "show", "--vault", "v1", "--name", SERVER)
        assert [(r["copyInterrupted"], r["copyStarted"]) for r in shown["runs"]] == [(None, None)]

    the_copy_restores(cluster, dest, direct, azure, backup)


def test_sigkill_mid_adhoc_copy_and_the_next_agent_pass_makes_it(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    emulators: dict[str, Emulator],
    tmp_path: Any,
) -> None:
    """adhoc-backup under a policy without a copy rule, killed mid-copy: the next agent pass
    makes that copy (no slot due), once (on the old code no pass ever made it)."""
    with FaultProxy(
        emulators["azure"].port, Script([Step(_blob_write, Fault.STALL)]), STALL
    ) as proxy:
        _, agent, dest, _, azure = _stopped_setup(
            make_dest, cluster_factory, pgvault_bin, emulators, tmp_path, None, proxy
        )
        adhoc = ("backup-instance", "adhoc-backup", "--vault", "v1", "--name", SERVER)
        proc = _spawn_group(*adhoc, "--rule-name", "Daily", env=agent.env)
        _wait_for_stalled_copy(proxy, agent, proc)
        _kill(proc)
        [backup] = agent.backups()
        shown = agent.run("backup-instance", "show", "--vault", "v1", "--name", SERVER)
        [run] = shown["runs"]
        assert (run["trigger"], run["state"]) == ("OnDemandBackup", "succeeded")
        assert run["copyInterrupted"].startswith("killed: the process making the copy"), run

        before = datetime.now(UTC) - timedelta(minutes=5)  # no slot is due yet
        again = agent.once(before)
        assert again["errors"] == []
        [redone] = again["runs"]
        assert (redone["backupId"], redone["copyInterrupted"], redone["copyStarted"]) == (
            backup,
            None,
            None,
        )
        assert redone["secondaryCopy"]["state"] == "succeeded"
        assert agent.once(before)["runs"] == []
        assert agent.job_kinds() == ["backup", "copy", "copy"]
    with dest.store() as store:
        assert read_copies(store, SERVER)[backup] == (azure.url,)
