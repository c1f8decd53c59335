"""Which run's copy to the secondary was killed (runs.copy_killed): the process making it
is provably gone from this host, judged as the job store judges a job's. A copy still
running here, or one on another host (whose process cannot be checked from here), is not:
no pass makes it again meanwhile."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from datetime import UTC, datetime

from core.jobs.liveness import hostname, process_start
from core.protection.copy_owner import copy_killed, copy_owner
from core.protection.model import RunRecord, RunState, RunTrigger

SLOT = datetime(2026, 3, 29, 1, tzinfo=UTC)
RUN = RunRecord(
    "pg1", SLOT, "BackupDaily", RunTrigger.SCHEDULED, RunState.SUCCEEDED, "agent-a:1",
    "Default", backup_id="20260329T010000",
)  # fmt: skip


def _gone() -> dict[str, object]:
    """A process of this host that ran and ended: its pid and start time."""
    child = subprocess.Popen(["sleep", "5"])
    start = process_start(child.pid)
    child.kill()
    child.wait()
    return {"host": hostname(), "pid": child.pid, "pidStart": start, "token": "t"}


def test_a_copy_whose_process_ended_here_was_killed() -> None:
    gone = _gone()
    reason = copy_killed(replace(RUN, copy_started=gone))
    assert reason == (
        f"killed: the process making the copy (pid {gone['pid']} on {hostname()}) ended "
        "before it did"
    )


def test_a_running_copy_or_another_hosts_or_none_is_not() -> None:
    assert copy_owner()["pid"] == os.getpid()
    assert copy_killed(replace(RUN, copy_started=copy_owner())) is None  # this live process
    elsewhere = {**_gone(), "host": "another-host"}
    assert copy_killed(replace(RUN, copy_started=elsewhere)) is None  # judged on its host
    assert copy_killed(RUN) is None  # no copy started, or its end recorded
    # a stop signal's copyInterrupted already says it; a malformed record is left alone
    assert copy_killed(replace(RUN, copy_started=_gone(), copy_interrupted="x")) is None
    assert copy_killed(replace(RUN, copy_started={"pid": "1", "host": 2})) is None


def test_the_record_keeps_it() -> None:
    started = copy_owner()
    document = replace(RUN, copy_started=started).to_json()
    assert document["copyStarted"] == started
    assert RunRecord.from_json(document).copy_started == started
    assert RunRecord.from_json({**RUN.to_json(), "copyStarted": None}).copy_started is None
    older = {k: v for k, v in RUN.to_json().items() if k != "copyStarted"}
    assert RunRecord.from_json(older).copy_started is None  # written by an older pgvault
