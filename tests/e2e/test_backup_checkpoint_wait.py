"""Without --immediate-checkpoint a backup says what it waits for (PostgreSQL's spread start
checkpoint) and how far that checkpoint has come, in -v output and in the job's phase.

The operator's trap: a first backup showed only "starting the backup" for 4.5 minutes.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.support.cli import pgvault
from tests.support.postgres import Cluster
from tests.support.wal import archive_command

HINT = "--immediate-checkpoint makes it fast"


def test_a_spread_checkpoint_is_named_and_its_progress_shown(
    cluster_factory: Callable[..., Cluster], scratch_dirs: Callable[[str], str], pgvault_bin: str
) -> None:
    url = f"file://{scratch_dirs('pgvault-ckpt-dest-')}"
    # PostgreSQL paces the checkpoint over 0.5 x 30 s here: long enough to watch, short for
    # a test. Dirty pages give it buffers to write.
    cluster = cluster_factory(
        archive_command=archive_command(pgvault_bin, url),
        settings={"checkpoint_timeout": "30s", "checkpoint_completion_target": "0.5"},
    )
    cluster.sql("create table t as select g, md5(g::text) m from generate_series(1, 200000) g")
    result = pgvault("backup", "-v", *cluster.conninfo_args(), url, "pg1")
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert "starting the backup" not in err
    assert (
        "waiting for PostgreSQL's checkpoint to finish before copying, paced over about "
        f"0m15s (checkpoint_completion_target x checkpoint_timeout); {HINT}"
    ) in err, err
    progress = [line for line in err.splitlines() if "buffers written" in line]
    assert progress and all("of about 0m15s" in line for line in progress), err
    assert "PostgreSQL's checkpoint done in" in err, err

    jobs = pgvault("jobs", "list", "--kind", "backup", "--format", "json")
    assert jobs.returncode == 0, jobs.stderr
    job_id = _last_backup_job(jobs.stdout)
    log = pgvault("jobs", "log", str(job_id))
    assert log.returncode == 0, log.stderr
    phases = [line for line in log.stdout.splitlines() if "phase: waiting for PostgreSQL's" in line]
    assert phases and all(HINT in line for line in phases), log.stdout
    assert any("buffers written" in line for line in phases), log.stdout


def _last_backup_job(listing: str) -> int:
    return max(int(job["id"]) for job in json.loads(listing))
