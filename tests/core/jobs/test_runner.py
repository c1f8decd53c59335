"""Running real operations (uploads through core.storage) as jobs in this process."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from core.errors import Cancelled, ExitCode, PgvaultError
from core.jobs import JobState, JobStore
from core.jobs.runner import Outcome, raise_for, run_foreground
from tests.support.destinations import TestDestination
from tests.support.jobkinds import UPLOAD, UploadRequest
from tests.support.jobs import make_source, pgvault, wait_for

MiB = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "state" / "jobs.db")


def test_a_foreground_job_records_progress_samples_log_and_result(
    store: JobStore, tmp_path: Path, make_dest: object
) -> None:
    dest: TestDestination = make_dest("file")  # type: ignore[operator]
    source = make_source(tmp_path / "src", 12 * MiB)
    request = UploadRequest(source, dest.url, "one/object", server="pg-a", max_bandwidth=4 * MiB)
    seen: list[JobState] = []

    def watch() -> None:  # another connection, as a console would have
        other = JobStore(store.path)
        while True:
            jobs = other.list_jobs()
            if jobs:
                seen.append(jobs[0].state)
                if jobs[0].final:
                    return
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    outcome = run_foreground(store, UPLOAD, request)
    watcher.join(timeout=10)
    job = raise_for(outcome)
    assert JobState.RUNNING in seen and seen[-1] is JobState.SUCCEEDED
    assert job.state is JobState.SUCCEEDED
    assert job.bytes_done == job.bytes_total == 12 * MiB and job.files_done == 1
    assert job.server == "pg-a" and job.destination == dest.url.removesuffix("/")
    assert job.result == {"key": "one/object", "size": 12 * MiB}
    assert job.started is not None and job.finished is not None
    assert job.finished - job.started >= 2.0  # capped at 4 MiB/s
    samples = store.samples(job.id)
    assert len(samples) >= 2 and max(s.rate for s in samples) > 1 * MiB
    assert [line.message for line in store.log_tail(job.id)][-1] == "succeeded"
    with dest.store() as objects:
        assert sha256(objects.get_bytes("one/object")) == sha256(Path(source).read_bytes())


def test_a_failed_operation_ends_failed_with_its_error_and_exit_code(
    store: JobStore, tmp_path: Path, make_dest: object
) -> None:
    dest: TestDestination = make_dest("file", create=False)  # type: ignore[operator]
    source = make_source(tmp_path / "src", MiB)
    outcome = run_foreground(store, UPLOAD, UploadRequest(source, dest.url, "x"))
    assert outcome.job.state is JobState.FAILED
    assert outcome.job.error and "not a directory" in outcome.job.error
    with pytest.raises(PgvaultError) as info:
        raise_for(outcome)
    assert info.value.exit_code == ExitCode.FAILED
    assert store.log_tail(outcome.job.id)[-1].message.startswith("failed: ")


def test_a_foreground_job_is_paused_and_cancelled_from_another_process(
    store: JobStore, tmp_path: Path, make_dest: object
) -> None:
    dest: TestDestination = make_dest("file")  # type: ignore[operator]
    source = make_source(tmp_path / "src", 64 * MiB)
    request = UploadRequest(source, dest.url, "big", max_bandwidth=4 * MiB)
    outcomes: list[Outcome] = []
    reporters = []

    def body() -> None:
        from core.jobs.runner import execute, start_foreground

        job, reporter = start_foreground(store, UPLOAD, request)
        reporters.append((job, reporter))
        outcomes.append(execute(UPLOAD, request, reporter))

    thread = threading.Thread(target=body)
    thread.start()
    job, reporter = wait_for(lambda: reporters and reporters[0], what="the job to start")
    wait_for(lambda: reporter.snapshot().bytes_done > 2 * MiB, what="bytes to flow")
    state_dir = store.path.parent

    pgvault(state_dir, "jobs", "pause", str(job.id), check=True)
    requested = time.monotonic()
    wait_for(lambda: reporter.control.paused, timeout=1.0, what="the pause to reach the job")
    assert time.monotonic() - requested < 1.0
    time.sleep(0.5)  # a slice in flight may finish
    frozen = reporter.snapshot().bytes_done
    time.sleep(1.5)
    assert reporter.snapshot().bytes_done == frozen
    assert store.get(job.id).state is JobState.PAUSED

    pgvault(state_dir, "jobs", "cancel", str(job.id), check=True)
    thread.join(timeout=10)
    assert not thread.is_alive()
    outcome = outcomes[0]
    assert outcome.job.state is JobState.CANCELLED
    assert outcome.job.error == "cancelled by the operator"
    with pytest.raises(Cancelled) as info:
        raise_for(outcome)
    assert info.value.exit_code == ExitCode.FAILED
    with dest.store() as objects:
        assert not objects.exists("big")
        assert objects.list_pending_uploads() == []


def test_credentials_in_the_url_never_reach_the_store(
    store: JobStore, tmp_path: Path, make_dest: object
) -> None:
    dest: TestDestination = make_dest("s3")  # type: ignore[operator]
    secret = "pgvSecretKeyValue0123456789"
    url = f"{dest.url}?AWS_ACCESS_KEY_ID=testing&AWS_SECRET_ACCESS_KEY={secret}"
    source = make_source(tmp_path / "src", MiB)
    request = UploadRequest(source, url, "o", endpoint_url=dest.config.endpoint_url)
    job = raise_for(run_foreground(store, UPLOAD, request))
    assert job.options["url"] == dest.url
    store.close()
    conn = sqlite3.connect(store.path)
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert secret not in dump
    raw = b"".join(p.read_bytes() for p in store.path.parent.iterdir() if p.is_file())
    assert secret.encode() not in raw


def test_only_failed_jobs_of_resumable_kinds_resume_in_a_new_job(store: JobStore) -> None:
    from core.jobs.model import IllegalTransition
    from core.jobs.runner import resume_request
    from tests.core.jobs.test_kinds import KIND

    plain = store.create(KIND.name, state=JobState.RUNNING, entry=KIND.entry, options={})
    with pytest.raises(IllegalTransition, match="it is running, not failed"):
        resume_request(store, plain.id)
    store.transition(plain.id, JobState.FAILED, error="boom")
    with pytest.raises(IllegalTransition, match="roundtrip jobs cannot be resumed"):
        resume_request(store, plain.id)
    request = UploadRequest("/src", "file:///tmp/x", "k")
    upload = store.create(
        UPLOAD.name, state=JobState.RUNNING, entry=UPLOAD.entry, options=UPLOAD.options(request)
    )
    store.transition(upload.id, JobState.FAILED, error="boom")
    kind, again = resume_request(store, upload.id)
    assert kind is UPLOAD and again == request


def test_a_cancelled_job_resumes_only_for_a_kind_that_asks_for_it(store: JobStore) -> None:
    from core.jobs.model import IllegalTransition
    from core.jobs.runner import ended_resumably, resume_request
    from core.logical.jobs import LOGICAL_BACKUP

    request = UploadRequest("/src", "file:///tmp/x", "k")
    upload = store.create(
        UPLOAD.name, state=JobState.RUNNING, entry=UPLOAD.entry, options=UPLOAD.options(request)
    )
    store.transition(upload.id, JobState.CANCELLED, error="cancelled by the operator")
    assert not ended_resumably(store, store.get(upload.id))
    with pytest.raises(IllegalTransition, match="it is cancelled, not failed"):
        resume_request(store, upload.id)
    assert LOGICAL_BACKUP.resumes_cancelled and LOGICAL_BACKUP.resume is not None
