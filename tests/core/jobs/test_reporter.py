"""The job reporter's write-through of details: a killed process's job still names its backup."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from core.jobs import JobState, JobStore

# A process that records a backup ID as its job's detail and is killed (SIGKILL) the moment
# detail() returns. Its periodic flushes are an hour apart and the first one is over before
# the ID exists: only detail() itself can have written the ID.
KILLED_AFTER_DETAIL = """
import os, signal, sys, time
from core.jobs import JobStore
from core.jobs.reporter import JobReporter
store = JobStore(sys.argv[1])
job = int(sys.argv[2])
reporter = JobReporter(store.path, job, flush_interval=3600)
reporter.start()
while store.get(job).heartbeat is None:  # the first flush, at start
    time.sleep(0.01)
reporter.phase("dump")
reporter.detail("backup_id", "20260101T000000")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_detail_is_in_the_store_when_detail_returns(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "state" / "jobs.db")
    job = store.create("logical-backup", state=JobState.RUNNING)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_DETAIL, str(store.path), str(job.id)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    recorded = store.get(job.id)
    assert recorded.details.backup_id == "20260101T000000"
    # The flush that wrote it wrote the rest of the progress too, as every flush does.
    assert recorded.phase == "dump"
