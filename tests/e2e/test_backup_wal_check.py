"""A backup is DONE only once the WAL that makes it consistent is in its own destination under
its own server name; one that archive_command does not feed fails, naming the likely cause.

The operator's trap: a backup taken as `pg2` while archive_command archived to `pg1` exited 0
and was listed DONE, but could not be restored (its WAL never reached pg2/wals).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from core.catalog.backup_info import DONE, FAILED
from core.catalog.layout import ServerLayout
from core.catalog.reader import Catalog
from core.postgres.walnames import (
    DEFAULT_SEGMENT_SIZE,
    last_segment_needed,
    parse_lsn,
    segment_range,
)
from core.storage import StoreConfig
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster, world_dir
from tests.support.wal import archive_command


def _stored_wal(dest: TestDestination, server: str) -> set[str]:
    layout = ServerLayout(server)
    with dest.store() as store:
        parsed = (layout.parse_wal(o.key) for o in store.list_objects(layout.wals_prefix))
        return {p[0] for p in parsed if p is not None}


def _needed(dest: TestDestination, server: str, backup_id: str) -> list[str]:
    with dest.store() as store:
        info = Catalog(store, server).get(backup_id)
    assert info.status == DONE and info.begin_wal and info.end_xlog and info.timeline
    last = last_segment_needed(info.timeline, parse_lsn(info.end_xlog), DEFAULT_SEGMENT_SIZE)
    return segment_range(info.begin_wal, last)


@pytest.fixture
def owned_dest() -> Iterator[TestDestination]:
    """A file destination postgres owns: archive_command writes into it as postgres."""
    root = world_dir("pgvault-walcheck-")
    dest = TestDestination("file", f"file://{root}", root, StoreConfig(), cleanup_dir=root)
    yield dest
    dest.drop()


def test_a_backup_under_a_server_name_archive_command_does_not_use_fails(
    cluster_factory: Callable[..., Cluster], owned_dest: TestDestination, pgvault_bin: str
) -> None:
    cluster = cluster_factory(archive_command=archive_command(pgvault_bin, owned_dest.url))
    args = ["backup", "--immediate-checkpoint", *cluster.conninfo_args(), owned_dest.url]

    wrong = pgvault(*args, "--wal-timeout", "3", "pg2")
    assert wrong.returncode == 1, wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert "did not reach" in wrong.stderr and "under server pg2" in wrong.stderr
    assert "archives WAL elsewhere (another destination or server name)" in wrong.stderr
    with owned_dest.store() as store:
        (info,) = Catalog(store, "pg2").backups()
    assert info.status == FAILED and info.error and "did not reach" in info.error

    right = pgvault(*args, "pg1")
    assert right.returncode == 0, right.stderr
    needed = _needed(owned_dest, "pg1", right.stdout.strip())
    assert set(needed) <= _stored_wal(owned_dest, "pg1")


def test_the_backup_waits_for_wal_that_reaches_the_destination_late(
    cluster_factory: Callable[..., Cluster], make_dest: Callable[..., TestDestination]
) -> None:
    """An archiver that uploads a few seconds after PostgreSQL archived (as the --async
    pusher does): the backup ends only once its WAL is there."""
    spool = world_dir("pgvault-late-spool-")
    dest = make_dest("file")
    stop = threading.Event()

    def uploader() -> None:  # uploads each spooled segment 3 s after it appeared
        done: set[str] = set()
        while not stop.wait(0.2):
            for name in sorted(set(os.listdir(spool)) - done):
                path = os.path.join(spool, name)
                if time.time() - os.stat(path).st_mtime >= 3:
                    pushed = pgvault("wal-archive", dest.url, "pg1", path)
                    assert pushed.returncode == 0, pushed.stderr
                    done.add(name)

    thread = threading.Thread(target=uploader, daemon=True)
    try:
        cluster = cluster_factory(archive_command=f"cp %p {spool}/%f")
        thread.start()
        result = pgvault(
            "backup", "--immediate-checkpoint", *cluster.conninfo_args(), dest.url, "pg1"
        )
        assert result.returncode == 0, result.stderr
        stored = _stored_wal(dest, "pg1")  # read at once: nothing may be missing now
        needed = _needed(dest, "pg1", result.stdout.strip())
        assert set(needed) <= stored, (needed, stored)
    finally:
        stop.set()
        thread.join()
        shutil.rmtree(spool, ignore_errors=True)


def test_with_archiving_off_a_backup_is_refused_before_anything_is_written(
    pg: Cluster, make_dest: Callable[..., TestDestination]
) -> None:
    dest = make_dest("file")
    args = ["backup", "--immediate-checkpoint", *pg.conninfo_args(), dest.url, "pg1"]
    refused = pgvault(*args)
    assert refused.returncode == 1, refused.stderr
    assert "archive_mode = off" in refused.stderr and "--no-wal-check" in refused.stderr
    with dest.store() as store:
        assert list(store.list_objects("")) == []

    kept_elsewhere = pgvault(*args[:1], "--no-wal-check", *args[1:])
    assert kept_elsewhere.returncode == 0, kept_elsewhere.stderr
    assert "WAL archiving is off" in kept_elsewhere.stderr
    with dest.store() as store:
        (info,) = Catalog(store, "pg1").backups()
    assert info.status == DONE
