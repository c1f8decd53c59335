"""A copy killed with SIGKILL mid-object leaves its upload open; the rerun clears it.

A 40 MiB archive is copied from a local directory at 4 MB/s and the copy is killed once
the target holds its unfinished upload (moto's S3 multipart upload, fake-gcs-server's
temporary objects under .pgvault-tmp/). Running the same copy again exits 0 with the object
verified, and the target holds no unfinished upload and no temporary object any more; so
does `jobs resume` of a detached copy job whose process was killed.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.catalog.layout import ServerLayout
from core.jobs.liveness import DEAD_AFTER
from tests.support import jobs
from tests.support.catalog import put_backup
from tests.support.cli import pgvault, spawn
from tests.support.destinations import TestDestination

SERVER = "pg1"
BACKUP = "20260101T000000"
ARCHIVE = ServerLayout(SERVER).backup_file(BACKUP, "data.tar")


def _url(dest: TestDestination) -> str:
    if dest.provider == "s3":
        return f"{dest.url}?AWS_ENDPOINT={dest.config.endpoint_url}"
    return dest.url


def _unfinished(dest: TestDestination) -> int:
    with dest.store() as store:
        return len(store.list_pending_uploads(f"{SERVER}/"))


def _temporary_objects(dest: TestDestination) -> int:
    """GCS: the objects under the prefix's .pgvault-tmp/, counted past the store."""
    if dest.provider != "gcs":
        return 0
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="pgvault", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    return sum(1 for _ in client.list_blobs(dest.bucket, prefix="pfx/.pgvault-tmp/"))


@pytest.mark.parametrize("provider", ["s3", "gcs"])
def test_a_rerun_clears_what_a_killed_copy_left_open(
    provider: str, make_dest: Callable[..., TestDestination]
) -> None:
    local, target = make_dest("file"), make_dest(provider)
    put_backup(local, BACKUP)
    with local.store() as store:
        store.put_bytes(ARCHIVE, os.urandom(40 * 1024 * 1024))
    args = ["copy", local.url, SERVER, BACKUP, "--to", _url(target)]

    proc = spawn(*args, "--max-bandwidth", "4MB")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _unfinished(target):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    time.sleep(1.0)  # a few chunks more are stored
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert _unfinished(target) == 1
    if provider == "gcs":
        assert _temporary_objects(target) > 0

    rerun = pgvault(*args, "--format", "json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["copied"] > 0
    assert (_unfinished(target), _temporary_objects(target)) == (0, 0)
    with target.store() as store:
        assert store.head(ARCHIVE).size == 40 * 1024 * 1024


def test_jobs_resume_of_a_killed_copy_job_clears_what_it_left_open(
    make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    local, target = make_dest("file"), make_dest("gcs")
    put_backup(local, BACKUP)
    with local.store() as store:
        store.put_bytes(ARCHIVE, os.urandom(40 * 1024 * 1024))
    args = ["copy", local.url, SERVER, BACKUP, "--to", _url(target), "--max-bandwidth", "4MB"]
    state = tmp_path / "state"
    detached = jobs.pgvault(state, *args, "--detach", check=True)
    job_id = int(detached.stdout.strip())
    jobs.wait_for(lambda: _temporary_objects(target) > 2, timeout=60, what="chunks stored")
    os.kill(jobs.show(state, job_id)["pid"], signal.SIGKILL)
    jobs.wait_for(
        lambda: jobs.show(state, job_id)["state"] == "failed",
        timeout=DEAD_AFTER + 15,
        interval=0.5,
        what="the killed job to be marked failed",
    )
    assert _unfinished(target) == 1

    resumed = jobs.pgvault(state, "jobs", "resume", str(job_id), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert (_unfinished(target), _temporary_objects(target)) == (0, 0)
    with target.store() as store:
        assert store.head(ARCHIVE).size == 40 * 1024 * 1024
