"""The stop waits until the backup's WAL is archived, as pg_backup_stop(true) does (but not
for the .backup history file, which no restore reads), and that wait can be interrupted."""

from __future__ import annotations

import os
import shutil
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from core.catalog.backup_info import FAILED
from core.catalog.reader import Catalog
from core.postgres.walnames import DEFAULT_SEGMENT_SIZE, last_segment_needed, parse_lsn
from tests.support.cli import pgvault, spawn
from tests.support.destinations import TestDestination
from tests.support.jobs import wait_for
from tests.support.postgres import Cluster, world_dir


def test_the_backup_ends_only_once_its_wal_is_archived(
    cluster_factory: Callable[..., Cluster], make_dest: Callable[..., TestDestination]
) -> None:
    archive = world_dir("pgvault-slow-wal-")
    try:
        cluster = cluster_factory(archive_command=f"sleep 1 && cp %p {archive}/%f")
        dest = make_dest("file")
        # WAL goes to `archive` (cp), not to dest: this test is about PostgreSQL's archiving.
        result = pgvault(
            "backup",
            "--immediate-checkpoint",
            "--no-wal-check",
            *cluster.conninfo_args(),
            dest.url,
            "pg",
        )
        assert result.returncode == 0, result.stderr
        archived = set(os.listdir(archive))  # read at once: nothing may be missing now
    finally:
        shutil.rmtree(archive, ignore_errors=True)
    with dest.store() as store:
        info = Catalog(store, "pg").get(result.stdout.strip())
    assert info.end_xlog and info.begin_xlog and info.timeline
    last = last_segment_needed(info.timeline, parse_lsn(info.end_xlog), DEFAULT_SEGMENT_SIZE)
    assert last in archived


def test_the_backup_does_not_wait_for_its_history_file(
    cluster_factory: Callable[..., Cluster], make_dest: Callable[..., TestDestination]
) -> None:
    """archive_command holds every .backup file until released: the backup ends with its
    last segment archived while its history file is still queued (pg_backup_stop(true)
    would wait for it: one more archive_command run)."""
    archive = world_dir("pgvault-held-wal-")
    release = os.path.join(archive, "release")
    hold = f"case %f in *.backup) while [ ! -e {release} ]; do sleep 0.1; done;; esac; "
    cluster = cluster_factory(archive_command=f"{hold}cp %p {archive}/%f")
    dest = make_dest("file")
    status = os.path.join(cluster.data, "pg_wal", "archive_status")
    try:
        args = ["--immediate-checkpoint", "--no-wal-check", *cluster.conninfo_args()]
        result = pgvault("backup", *args, dest.url, "pg", timeout=120)
        assert result.returncode == 0, result.stderr
        held = sorted(n for n in os.listdir(status) if n.endswith(".backup.ready"))
        archived = set(os.listdir(archive))
        with dest.store() as store:
            info = Catalog(store, "pg").get(result.stdout.strip())
        assert info.end_xlog and info.timeline
        history = f"{info.begin_wal}.{info.begin_offset:08X}.backup"
        assert held == [f"{history}.ready"] and history not in archived
        end = last_segment_needed(info.timeline, parse_lsn(info.end_xlog), DEFAULT_SEGMENT_SIZE)
        assert end in archived
        Path(release).touch()
        wait_for(
            lambda: os.path.exists(os.path.join(archive, history)),
            timeout=60,
            what="the released history file to be archived",
        )
    finally:
        Path(release).touch()
        cluster.stop()  # archive_command's loop has ended before its marker goes
        shutil.rmtree(archive, ignore_errors=True)


def test_a_stuck_archive_command_keeps_the_backup_waiting_until_interrupted(
    cluster_factory: Callable[..., Cluster], make_dest: Callable[..., TestDestination]
) -> None:
    cluster = cluster_factory(archive_command="false")
    # Archiving already fails when the backup starts: a segment waits for archive_command.
    first = cluster.one("SELECT pg_walfile_name(pg_current_wal_lsn())")
    cluster.sql("CREATE TABLE t AS SELECT 1 AS n; SELECT pg_switch_wal()")
    wait_for(
        lambda: cluster.one("SELECT last_failed_wal FROM pg_stat_archiver") == first,
        timeout=60,
        what="pg_stat_archiver to report the failing archive_command",
    )
    dest = make_dest("file")
    proc = spawn("backup", "--immediate-checkpoint", *cluster.conninfo_args(), dest.url, "pg")
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(proc.stderr or ()), daemon=True)
    reader.start()
    # pg_backup_stop has run once its history file waits to be archived (a slow start under
    # load must not be taken for the wait).
    status = os.path.join(cluster.data, "pg_wal", "archive_status")
    wait_for(
        lambda: any(n.endswith(".backup.ready") for n in os.listdir(status)),
        timeout=120,
        what="pg_backup_stop's history file to wait for archiving",
    )
    # The wait says why it waits within seconds, not after a minute of "stopping".
    wait_for(
        lambda: any("to be archived: archive_command fails on" in line for line in said),
        timeout=60,
        what="the backup to name the failing archive_command",
    )
    assert proc.poll() is None  # still waiting for WAL that cannot be archived
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    reader.join(timeout=10)
    stderr = "".join(said)
    assert proc.returncode == 1
    assert f"WAL archiving is failing: archive_command fails on {first}" in stderr, stderr
    assert "This backup will wait at its end" in stderr
    waiting = next(line for line in said if "to be archived: archive_command" in line)
    assert f"archive_command fails on {first} (failed " in waiting, waiting
    with dest.store() as store:
        (info,) = Catalog(store, "pg").backups()
    assert info.status == FAILED
    # Failed in the phase that names the cause, as the jobs view showed it meanwhile.
    assert info.error == (
        f"failure waiting for WAL archiving: archive_command fails on {first} "
        "(interrupted by SIGTERM)"
    ), stderr
