"""A backup killed mid-way: never listed as restorable, no unfinished upload, PostgreSQL out of
backup mode. SIGTERM, SIGINT and SIGHUP (the terminal closing) cancel cleanly at once; after
SIGKILL nothing can run in the dead process, so the next backup of the server cleans up
after it."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import termios
import time
from collections.abc import Iterator, Mapping

import pytest

from core.backup.part_uploads import StoredBackup, resumable_tokens
from core.catalog.backup_info import DONE, FAILED, STARTED
from core.catalog.layout import ServerLayout
from core.catalog.reader import Catalog
from core.errors import ObjectNotFound
from core.storage import ObjectStore
from tests.support.cli import PGVAULT, pgvault, spawn
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster
from tests.support.restore import run_barman
from tests.support.sample import archived_cluster, populate

SERVER = "pg15"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    cluster, archive = archived_cluster()
    try:
        populate(cluster)
        yield cluster
    finally:
        cluster.drop()
        shutil.rmtree(archive, ignore_errors=True)


def _backup_args(cluster: Cluster, dest: TestDestination, *flags: str) -> list[str]:
    return [
        "backup",
        "--immediate-checkpoint",
        "--no-wal-check",  # archive_command copies WAL to a directory of the test's
        *flags,
        *cluster.conninfo_args(),
        *dest.cli_args,
        dest.url,
        SERVER,
    ]


# 2 MiB/s and 5 MiB parts (-S 10GB keeps parts at the provider minimum): the ~30 MiB of
# PGDATA take seconds to copy, far more than the parts in flight can absorb.
SLOW = ("--max-bandwidth", "2MB", "-S", "10GB")


def _wait_for_data_upload(store: ObjectStore, timeout: float = 60) -> None:
    """Wait until PGDATA's archive is being uploaded: the backup is mid-way through copying."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = store.list_pending_uploads(f"{SERVER}/base/")
        if any(p.key.endswith("/data.tar") for p in pending):
            time.sleep(0.5)
            return
        time.sleep(0.2)
    raise TimeoutError("the backup never started uploading PGDATA")


def _backup_sessions(cluster: Cluster) -> int:
    return int(
        cluster.one(
            "select count(*) from pg_stat_activity where application_name like 'pgvault backup%'"
        )
    )


def _wait_out_of_backup_mode(cluster: Cluster, log_before: int) -> None:
    """No pgvault session is left and PostgreSQL logged that it aborted the backup."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        aborted = "aborting backup due to backend exiting" in cluster.server_log()[log_before:]
        if aborted and _backup_sessions(cluster) == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"PostgreSQL did not leave backup mode:\n{cluster.server_log()[-2000:]}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_cancels_cleanly(
    cluster: Cluster, make_dest: object, signum: signal.Signals
) -> None:
    dest: TestDestination = make_dest("s3")  # type: ignore[operator]
    log_before = len(cluster.server_log())
    proc = spawn(*_backup_args(cluster, dest, *SLOW), env=dest.env)
    with dest.store() as store:
        _wait_for_data_upload(store)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 1, stderr
        assert "Traceback" not in stderr
        assert f"interrupted by {signum.name}" in stderr.splitlines()[-1]

        assert store.list_pending_uploads("") == []
        catalog = Catalog(store, SERVER)
        (info,) = catalog.backups()
        assert info.status == FAILED
        assert info.error == f"failure copying files (interrupted by {signum.name})"
        with pytest.raises(ObjectNotFound):
            catalog.resolve("latest")
        assert catalog.resolve("last-failed").backup_id == info.backup_id
        record = catalog.pgvault_manifest(info.backup_id)
        assert record is not None and record.state == "failed"
    _wait_out_of_backup_mode(cluster, log_before)


def _on_a_terminal(args: list[str], env: Mapping[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """`pgvault --batch ARGS` in a session of its own whose controlling terminal is a new
    pseudo-terminal, as over SSH; returns the process and the terminal's master side."""
    master, slave = os.openpty()

    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [PGVAULT, "--batch", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=take_terminal,
        env={**os.environ, **env},
    )
    os.close(slave)
    return proc, master


def test_the_terminal_closing_cancels_cleanly(cluster: Cluster, make_dest: object) -> None:
    """An operator's SSH session drops: the kernel hangs up the terminal (SIGHUP), and the
    backup is cancelled as SIGTERM cancels it, not left to die with uploads open."""
    dest: TestDestination = make_dest("s3")  # type: ignore[operator]
    log_before = len(cluster.server_log())
    proc, terminal = _on_a_terminal(_backup_args(cluster, dest, *SLOW), dest.env)
    with dest.store() as store:
        _wait_for_data_upload(store)
        os.close(terminal)
        assert proc.wait(timeout=60) == 1
        assert store.list_pending_uploads("") == []
        (info,) = Catalog(store, SERVER).backups()
        assert info.status == FAILED
        assert info.error == "failure copying files (interrupted by SIGHUP)"
    _wait_out_of_backup_mode(cluster, log_before)


def test_after_sigkill_the_next_backup_cleans_up(cluster: Cluster, make_dest: object) -> None:
    dest: TestDestination = make_dest("s3")  # type: ignore[operator]
    log_before = len(cluster.server_log())
    proc = spawn(*_backup_args(cluster, dest, *SLOW), env=dest.env)
    with dest.store() as store:
        _wait_for_data_upload(store)
        proc.kill()
        proc.wait(timeout=30)

        # Right after the kill: STARTED, listed by barman-cloud as such, never as restorable.
        catalog = Catalog(store, SERVER)
        (killed,) = catalog.backups()
        assert killed.status == STARTED
        with pytest.raises(ObjectNotFound):
            catalog.resolve("latest")
        listing = run_barman("backup-list", dest, "--format", "json", dest.url, SERVER)
        statuses = {b["backup_id"]: b["status"] for b in json.loads(listing.stdout)["backups_list"]}
        assert statuses == {killed.backup_id: STARTED}
        _wait_out_of_backup_mode(cluster, log_before)
        assert store.list_pending_uploads(f"{SERVER}/base/")  # what the dead process left

        # The next backup of the server finds the dead process's lease and cleans up.
        result = pgvault(*_backup_args(cluster, dest, "--lz4"), env=dest.env)
        assert result.returncode == 0, result.stderr
        # Only the part whose chunks were recorded stays, for `backup --resume` to continue.
        kept = resumable_tokens(StoredBackup(store, ServerLayout(SERVER), killed.backup_id))
        assert {u.upload_id for u in store.list_pending_uploads("")} <= kept
        catalog = Catalog(store, SERVER)
        after = {b.backup_id: b for b in catalog.backups()}
        assert after[killed.backup_id].status == FAILED
        assert "ended before the backup finished" in (after[killed.backup_id].error or "")
        assert catalog.resolve("latest").backup_id == result.stdout.strip()
        assert after[result.stdout.strip()].status == DONE
