"""A job store that opens but cannot be written (its disk is full) never stops the work: a
foreground backup still runs and exits 0, and a WAL push batch whose end cannot be recorded
still hands its result to the pusher. A key change is the exception: its record is part of
it, so it is refused and changes nothing.

The full disk is real: a small tmpfs holding the state directory, filled to the last byte
once the store exists (SQLite's shared-memory file kept allocated by an open connection,
as any pgvault process watching the store keeps it)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.jobs import JobStore
from core.progress import Reporter
from core.wal.jobs import recorded_batches
from core.wal.pusher import BatchResult
from tests.support.catalog import SERVER, archived_server
from tests.support.cli import PGVAULT
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster


def _fill(directory: Path) -> None:
    """Write until the file system has not a byte left."""
    with open(directory / "filler", "ab", buffering=0) as fh:
        for size in (65536, 1):  # then the last partial block, a byte at a time
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * size)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "state"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def full_store(small_disk: Path) -> Iterator[Path]:
    """A job store on `small_disk`, created, then its disk filled; a watcher keeps it open."""
    JobStore(small_disk / "jobs.db").close()
    watcher = sqlite3.connect(small_disk / "jobs.db")
    watcher.execute("select count(*) from jobs").fetchone()
    _fill(small_disk)
    try:
        yield small_disk
    finally:
        watcher.close()


def test_a_foreground_backup_runs_when_the_job_store_is_full(
    full_store: Path,
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
) -> None:
    dest = make_dest("s3")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    result = subprocess.run(
        [
            PGVAULT,
            "--state-dir",
            str(full_store),
            "--batch",
            "backup",
            "--immediate-checkpoint",
            *server.cluster.conninfo_args(),
            *dest.cli_args,
            dest.url,
            SERVER,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **dest.env},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "running without job tracking" in result.stderr
    backup_id = result.stdout.strip()
    assert server.info(backup_id).status == "DONE"


def test_a_key_change_that_cannot_be_recorded_is_refused_and_changes_nothing(
    full_store: Path, make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    dest = make_dest("file")
    passfile = tmp_path / "pass"
    passfile.write_text("passphrase of the full job store test 51aa\n")
    passfile.chmod(0o600)
    result = subprocess.run(
        [
            PGVAULT,
            "--state-dir",
            str(full_store),
            "--batch",
            "keys",
            "init",
            "--encryption-passphrase-file",
            str(passfile),
            *dest.cli_args,
            dest.url,
            SERVER,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **dest.env},
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "always recorded as a job: nothing was changed" in result.stderr
    with dest.store() as store:
        assert not store.exists(f"{SERVER}/pgvault.keys")


def test_a_batch_whose_end_cannot_be_recorded_still_returns_its_result(small_disk: Path) -> None:
    with JobStore(small_disk / "jobs.db") as jobs:
        run = recorded_batches(jobs, "pg1", "file:///nowhere", str(small_disk / "spool"))
        names = ["000000010000000000000001"]

        def work(reporter: Reporter) -> BatchResult:
            reporter.advance(16, files=1)
            _fill(small_disk)  # the disk fills up while the batch uploads
            return BatchResult(pushed=list(names))

        result = run(names, work)
    assert result.pushed == names
