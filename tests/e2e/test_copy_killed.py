"""A copy killed with SIGKILL mid-object leaves its upload open; the rerun continues it
by chunk, sending again only what the target had not confirmed, and leaves nothing open.

A 40 MiB archive is copied from a local directory at 4 MB/s and the copy is killed once
the target holds its unfinished upload (moto's S3 multipart upload, fake-gcs-server's
temporary objects under .pgvault-tmp/). Running the same copy again exits 0 with the object
verified, and the target holds no unfinished upload and no temporary object any more; so
does `jobs resume` of a detached copy job whose process was killed. An 80 MiB archive
killed once most of it is confirmed is finished by a rerun that sends, counted on the wire
by a proxy in front of moto, Azurite or fake-gcs-server, only the chunks not recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.catalog.layout import ServerLayout
from core.copy.resume import RECORD_DIR
from core.errors import ObjectNotFound
from core.jobs.liveness import DEAD_AFTER
from tests.support import jobs
from tests.support.catalog import put_backup
from tests.support.cli import pgvault, spawn
from tests.support.destinations import TestDestination
from tests.support.emulators import Emulator
from tests.support.fault_proxy import FaultProxy, Script, through_proxy

SERVER = "pg1"
BACKUP = "20260101T000000"
ARCHIVE = ServerLayout(SERVER).backup_file(BACKUP, "data.tar")
MiB = 1024 * 1024


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

    # closed: this is polled, and a dropped client keeps its socket until a full collection
    client = storage.Client(project="pgvault", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    with contextlib.closing(client):
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


def _recorded(dest: TestDestination) -> int:
    """Bytes of the archive's chunks the running copy recorded as confirmed by the target
    (0 before the first, or while a GCS record is being replaced)."""
    with dest.store() as store:
        for info in store.list_objects(f"{SERVER}/base/{BACKUP}/{RECORD_DIR}/"):
            try:
                body = json.loads(store.get_bytes(info.key))
            except ObjectNotFound:
                return 0
            return sum(int(c["size"]) for c in body["chunks"])
    return 0


@pytest.mark.parametrize("provider", ["s3", "azure", "gcs"])
def test_a_rerun_of_a_killed_copy_sends_only_what_the_target_had_not_confirmed(
    provider: str, make_dest: Callable[..., TestDestination], emulators: dict[str, Emulator]
) -> None:
    size = 80 * MiB
    local, direct = make_dest("file"), make_dest(provider)
    put_backup(local, BACKUP)
    with local.store() as store:
        store.put_bytes(ARCHIVE, os.urandom(size))
    with FaultProxy(emulators[provider].port, Script([])) as proxy:
        target = through_proxy(direct, emulators, proxy)
        args = ["copy", local.url, SERVER, BACKUP, "--to", _url(target), "--format", "json"]
        proc = spawn(*args, "--max-bandwidth", "8MB", env=target.env)
        deadline = time.monotonic() + 120
        while _recorded(direct) < 0.7 * size:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        at_kill = _recorded(direct)
        assert _unfinished(direct) == 1
        before = proxy.received
        rerun = pgvault(*args, env=target.env)
        sent = proxy.received - before

    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    print(
        f"\ncopy resumed by chunk ({provider}): killed with {at_kill} of {size} bytes recorded; "
        f"the rerun sent {sent} bytes ({sent / size:.1%}), kept {result['reused_stored_bytes']}"
    )
    assert result["copied"] == 2 and result["reused_stored_bytes"] >= at_kill
    # what was not recorded, the chunks in flight at the kill (at most -J of 16 MiB) and
    # the requests' small bodies: never the whole object again
    assert sent <= size - at_kill + 2 * 16 * MiB + MiB, sent
    assert sent < 0.6 * size
    assert (_unfinished(direct), _temporary_objects(direct)) == (0, 0)
    with direct.store() as store:
        assert store.head(ARCHIVE).size == size
        assert list(store.list_objects(f"{SERVER}/base/{BACKUP}/{RECORD_DIR}/")) == []
    listed = pgvault("backup-list", *direct.cli_args, direct.url, SERVER, env=direct.env)
    assert BACKUP in listed.stdout, listed.stderr
