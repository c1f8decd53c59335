"""The fast path's batches are jobs: listed, described, paused and failed like any other."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.jobs import Job, JobFilter, JobState, JobStore
from core.jobs.model import IllegalTransition
from core.jobs.results import WalPushJobResult
from core.jobs.runner import resume_request
from core.storage import ObjectStore
from core.wal.archive import ArchiveSettings, WalArchiver
from core.wal.jobs import KIND, recorded_batches
from core.wal.spool import ArchiveSpool, PusherFailed, archive_through_spool
from tests.support.destinations import TestDestination
from tests.support.pusher import PusherThread, mark_done
from tests.support.wal import WalSample, archived_bytes, archived_names, private_parent


@pytest.fixture
def spool(scratch_dirs: Callable[[str], str]) -> ArchiveSpool:
    return ArchiveSpool(os.path.join(private_parent(scratch_dirs), "pg1.test"))


def _batches(jobs: JobStore) -> list[Job]:
    return jobs.list_jobs(JobFilter(kinds=(KIND,)))


def _recording_pusher(
    store: ObjectStore, spool: ArchiveSpool, pg_wal: str, jobs: JobStore, codec: str | None = None
) -> tuple[WalArchiver, PusherThread]:
    """The real pusher, every batch recorded as a job in `jobs`."""
    archiver = WalArchiver(store, "pg1", ArchiveSettings(codec))
    batches = recorded_batches(jobs, "pg1", store.describe(), spool.root)
    return archiver, PusherThread(archiver, spool, pg_wal, batches)


def test_every_batch_is_a_job_with_its_files_bytes_and_outcome(
    destination: TestDestination,
    pg_wal: str,
    wal_sample: WalSample,
    spool: ArchiveSpool,
    tmp_path: Path,
) -> None:
    names = sorted([*wal_sample.segments, wal_sample.backup_label])
    with JobStore(tmp_path / "jobs.db") as jobs, destination.store() as store:
        _, runner = _recording_pusher(store, spool, pg_wal, jobs, "lz4")
        for name in names:
            archive_through_spool(spool, os.path.join(pg_wal, name), 30, runner.start)
            mark_done(pg_wal, name)
        runner.join()
        assert sorted(archived_names(store, "pg1")) == names

        batches = _batches(jobs)
    assert batches, "no wal-push job was recorded"
    assert {job.state for job in batches} == {JobState.SUCCEEDED}
    assert sum(job.files_done for job in batches) == len(names)
    assert sum(job.result_as(WalPushJobResult).stored for job in batches) == len(names)
    assert sum(job.bytes_total or 0 for job in batches) == sum(
        os.path.getsize(wal_sample.path(n)) for n in names
    )
    assert all(job.server == "pg1" for job in batches)
    assert any(names[0] in job.description for job in batches)


def test_a_batch_that_cannot_archive_a_file_is_a_failed_job_naming_it(
    destination: TestDestination,
    pg_wal: str,
    wal_sample: WalSample,
    spool: ArchiveSpool,
    tmp_path: Path,
) -> None:
    first = wal_sample.segments[0]
    other = bytearray(wal_sample.read(first))
    other[4_000_000] ^= 1
    with JobStore(tmp_path / "jobs.db") as jobs, destination.store() as store:
        archiver, runner = _recording_pusher(store, spool, pg_wal, jobs)
        # another server archived different bytes under this name first
        store.put_bytes(archiver.layout.wal(first), bytes(other))
        with pytest.raises(PusherFailed, match="different content"):
            archive_through_spool(spool, os.path.join(pg_wal, first), 30, runner.start)
        runner.join()
        failed = [job for job in _batches(jobs) if job.state is JobState.FAILED]
        assert failed, [job.state for job in _batches(jobs)]
        assert first in (failed[0].error or "")
        assert archived_bytes(store, archived_names(store, "pg1")[first]) == bytes(other)
        with pytest.raises(IllegalTransition, match="archive_command again for every file"):
            resume_request(jobs, failed[0].id)  # the retry is PostgreSQL's


def test_a_paused_batch_sends_nothing_until_resumed(
    destination: TestDestination,
    pg_wal: str,
    wal_sample: WalSample,
    spool: ArchiveSpool,
    tmp_path: Path,
) -> None:
    first = wal_sample.segments[0]
    size = os.path.getsize(wal_sample.path(first))
    # A cap of a quarter of a segment per second keeps the upload going for about 4 s.
    with (
        JobStore(tmp_path / "jobs.db") as jobs,
        JobStore(tmp_path / "jobs.db") as operator,
        destination.store(max_bandwidth=size // 4) as store,
    ):
        _, runner = _recording_pusher(store, spool, pg_wal, jobs)
        outcome: list[str] = []
        archiving = threading.Thread(
            target=lambda: outcome.append(
                archive_through_spool(spool, os.path.join(pg_wal, first), 60, runner.start)
            )
        )
        archiving.start()
        job = _wait(lambda: next(iter(_batches(operator)), None))
        _wait(lambda: operator.get(job.id).bytes_done > 0 or None)
        operator.request_pause(job.id)
        _wait(lambda: operator.get(job.id).state is JobState.PAUSED or None)
        time.sleep(0.5)  # the last slice in flight lands
        before = operator.get(job.id).bytes_done
        time.sleep(2.5)
        assert operator.get(job.id).bytes_done == before < size
        assert not outcome  # archive_command still waits
        operator.request_resume(job.id)
        archiving.join(60)
        runner.join()
        assert outcome and "stored by the pusher" in outcome[0]
        assert operator.get(job.id).state is JobState.SUCCEEDED
        assert archived_bytes(store, archived_names(store, "pg1")[first]) == wal_sample.read(first)


def _wait(probe: Callable[[], object], timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")
