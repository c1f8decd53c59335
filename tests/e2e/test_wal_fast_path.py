"""The fast path (`wal-archive --async`) under a real PostgreSQL, including a killed pusher."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable, Iterator

import pytest

from core.jobs import JobFilter, JobState, JobStore
from core.wal.spool import ArchiveSpool
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster, world_dir
from tests.support.wal import (
    archive_command,
    archived_bytes,
    archived_names,
    pg_wal_bytes,
    status_files,
    stop_pushers,
    switch_segments,
    synthetic_segment,
    wait_archived_count,
    wait_for,
    walack_launcher,
)


@pytest.fixture
def spool_root() -> Iterator[str]:
    """A spool directory; pushers left running are stopped (by their pid) afterwards."""
    root = world_dir("pgvault-archspool-")
    yield root
    stop_pushers(root)
    shutil.rmtree(root, ignore_errors=True)


def _spools(root: str) -> list[ArchiveSpool]:
    return [ArchiveSpool(os.path.join(root, d)) for d in sorted(os.listdir(root))]


def _fast(
    pgvault_bin: str,
    dest: TestDestination,
    spool_root: str,
    *flags: str,
    state_dir: str | None = None,
) -> str:
    return archive_command(
        pgvault_bin,
        dest.url,
        *dest.cli_args,
        "--async",
        "--spool-dir",
        spool_root,
        *flags,
        state_dir=state_dir,
    )


def _assert_archive_matches(dest: TestDestination, cluster: Cluster, names: set[str]) -> None:
    with dest.store() as store:
        stored = archived_names(store, "pg1")
        for name in names:
            assert name in stored, f"{name} acknowledged to PostgreSQL but not stored"
            assert archived_bytes(store, stored[name]) == pg_wal_bytes(cluster, name)


@pytest.mark.parametrize("provider", ["azure", "gcs"])
def test_the_fast_path_archives_every_segment(
    provider: str,
    make_dest: Callable[..., TestDestination],
    pgvault_bin: str,
    cluster_factory: Callable[..., Cluster],
    spool_root: str,
    scratch_dirs: Callable[[str], str],
) -> None:
    dest = make_dest(provider)
    state_dir = scratch_dirs("pgvault-state-")  # the postgres user's job store
    cluster = cluster_factory(
        archive_command=_fast(
            pgvault_bin, dest, spool_root, "--lz4", "-J", "4", state_dir=state_dir
        ),
        env=dest.env,
        settings={"wal_keep_size": "1GB"},
    )
    segments = switch_segments(cluster, 12, rows=3000)
    wait_archived_count(cluster, len(segments))
    assert cluster.one("select failed_count from pg_stat_archiver") == 0
    _assert_archive_matches(dest, cluster, set(segments))
    # Every batch the pusher uploaded is a job any pgvault process can list.
    with JobStore.open(state_dir) as jobs:
        batches = jobs.list_jobs(JobFilter(kinds=("wal-push",)))
    assert batches and all(job.state is JobState.SUCCEEDED for job in batches)
    pushed = {name for job in batches for name in job.options["files"]}
    assert set(segments) <= pushed
    assert all(job.server == "pg1" and job.files_done == job.files_total for job in batches)
    (spool,) = _spools(spool_root)
    assert spool.pusher_pid(), "the pusher should still be running (it idles out later)"
    wait_for(lambda: spool.markers() == [], what="markers to be consumed or cleaned")
    assert os.stat(spool.root).st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("provider", "entry"), [("file", "pgvault"), ("s3", "pgvault"), ("s3", "walack")]
)
def test_a_killed_pusher_loses_nothing(
    provider: str,
    entry: str,
    make_dest: Callable[..., TestDestination],
    pgvault_bin: str,
    cluster_factory: Callable[..., Cluster],
    spool_root: str,
) -> None:
    dest = make_dest(provider)
    # A bandwidth cap keeps several uploads in flight when the pusher is killed.
    flags = ("-J", "4", "--max-bandwidth", "24MB")
    launcher = walack_launcher(pgvault_bin) if entry == "walack" else pgvault_bin
    cluster = cluster_factory(
        archive_command=_fast(launcher, dest, spool_root, *flags),
        env=dest.env,
        settings={"wal_keep_size": "2GB"},
    )
    segments = switch_segments(cluster, 14, rows=2000)
    wait_for(lambda: len(status_files(cluster, ".done")) >= 2, what="the first acknowledgements")
    (spool,) = _spools(spool_root)
    killed = spool.pusher_pid()
    assert killed
    os.kill(killed, signal.SIGKILL)
    wait_for(lambda: spool.pusher_pid() != killed, what="the killed pusher's lock to go")

    # PostgreSQL may still acknowledge files whose marker was written before the kill; the
    # count is read first (it moves after the .done rename), then the .done files.
    archived_at_kill, last_at_kill = cluster.sql(
        "select archived_count, last_archived_wal from pg_stat_archiver"
    )[0]
    done_at_kill = status_files(cluster, ".done")
    assert len(done_at_kill) < len(segments), "the pusher finished before it was killed"
    assert archived_at_kill <= len(done_at_kill) and last_at_kill in done_at_kill
    _assert_archive_matches(dest, cluster, done_at_kill)
    if provider == "file":
        with dest.store() as store:
            assert store.list_pending_uploads(), "no upload was cut off by the kill"

    # archive_command starts a new pusher; every segment ends up stored, byte for byte.
    wait_archived_count(cluster, len(segments), timeout=180)
    done = status_files(cluster, ".done")
    assert set(segments) <= done
    _assert_archive_matches(dest, cluster, done)
    assert spool.pusher_pid() not in (None, killed)
    last = cluster.one("select last_archived_wal from pg_stat_archiver")
    assert last == max(segments)


@pytest.mark.parametrize("entry", ["pgvault", "walack"])
def test_a_conflict_is_reported_to_postgresql_and_never_acknowledged(
    entry: str,
    make_dest: Callable[..., TestDestination],
    pgvault_bin: str,
    cluster_factory: Callable[..., Cluster],
    spool_root: str,
) -> None:
    dest = make_dest("s3")
    first = "000000010000000000000001"
    with dest.store() as store:  # another server already archived other bytes as segment 1
        store.put_bytes(f"pg1/wals/{first[:16]}/{first}", synthetic_segment(first))
    launcher = walack_launcher(pgvault_bin) if entry == "walack" else pgvault_bin
    cluster = cluster_factory(archive_command=_fast(launcher, dest, spool_root), env=dest.env)
    switch_segments(cluster, 2, rows=1000)
    wait_for(
        lambda: cluster.one("select failed_count from pg_stat_archiver") >= 2,
        what="archive_command failures",
    )
    assert "different content" in cluster.server_log()
    assert first not in status_files(cluster, ".done")
    assert cluster.one("select archived_count from pg_stat_archiver") == 0
    with dest.store() as store:
        key = archived_names(store, "pg1")[first]
        assert store.get_bytes(key) == synthetic_segment(first)
