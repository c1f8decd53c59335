"""A destination stays usable by every user who runs pgvault on it, and a permission error is
one line naming the file, its owner and what to do (exit 1), never an unexpected error.

The operator's trap: a backup run as root (with -U postgres) into the directory postgres
owns, after which backup-list, backup-delete and verify run as postgres (as cron and
archive_command do) could no longer read the catalog.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.cli import pgvault
from tests.support.postgres import (
    PG_USER,
    Cluster,
    as_postgres,
    chown_tree,
    make_cluster,
    world_dir,
)
from tests.support.wal import archive_command, pgvault_run, stop_pushers

SERVER = "pg1"


@dataclass
class Setup:
    cluster: Cluster
    root: str  # the destination directory, owned by postgres
    state: str  # a job store directory postgres can write
    pgvault_bin: str

    @property
    def url(self) -> str:
        return f"file://{self.root}"

    def as_pg(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`pgvault --batch ARGS` as the postgres user, as cron and archive_command run it."""
        env = {"PGVAULT_STATE_DIR": self.state}
        return pgvault_run(self.pgvault_bin, *args, env=env, as_pg=True)

    def backup_as_root(self) -> str:
        result = pgvault(
            "backup", "--immediate-checkpoint", *self.cluster.conninfo_args(), self.url, SERVER
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()


@pytest.fixture(scope="module")
def setup(pgvault_bin: str) -> Iterator[Setup]:
    root = world_dir("pgvault-owned-dest-")
    state = world_dir("pgvault-pg-state-")
    cluster = make_cluster(archive_command=archive_command(pgvault_bin, f"file://{root}"))
    try:
        # The archive (postgres) writes first, as on a server that archived before its
        # first backup: pg1/ and pg1/wals/ are postgres's.
        cluster.sql("create table t as select g from generate_series(1, 1000) g")
        segment = cluster.one("select pg_walfile_name(pg_current_wal_lsn())")
        cluster.sql("select pg_switch_wal()")
        cluster.wait_archived(segment)
        yield Setup(cluster, root, state, pgvault_bin)
    finally:
        cluster.drop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "unexpected error" not in lines[0] and "Traceback" not in result.stderr
    return lines[0]


def test_a_backup_run_as_root_writes_with_the_destination_owner_and_mode(setup: Setup) -> None:
    assert os.geteuid() == 0  # the trap needs root; the test runner is root
    backup_id = setup.backup_as_root()
    postgres = pwd.getpwnam(PG_USER)
    for directory, dirs, files in os.walk(setup.root):
        for name in [*dirs, *files]:
            path = os.path.join(directory, name)
            st = os.stat(path)
            assert (st.st_uid, st.st_gid) == (postgres.pw_uid, postgres.pw_gid), path
            assert st.st_mode & 0o007 == 0, f"{path} is open to others: {st.st_mode:o}"

    listed = setup.as_pg("backup-list", setup.url, SERVER)
    assert listed.returncode == 0, listed.stderr
    assert backup_id in listed.stdout
    verified = setup.as_pg("verify", setup.url, SERVER, backup_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_retention_run_as_postgres_deletes_backups_root_took(setup: Setup) -> None:
    older = setup.backup_as_root()
    newer = setup.backup_as_root()
    deleted = setup.as_pg("backup-delete", "-r", "REDUNDANCY 1", setup.url, SERVER)
    assert deleted.returncode == 0, deleted.stderr
    listed = setup.as_pg("backup-list", setup.url, SERVER)
    assert newer in listed.stdout and older not in listed.stdout, listed.stdout


def test_a_file_postgres_cannot_read_is_named_with_its_owner(setup: Setup) -> None:
    backup_id = setup.backup_as_root()
    info = os.path.join(setup.root, SERVER, "base", backup_id, "backup.info")
    os.chown(info, 0, 0)  # as an older pgvault run as root left it
    os.chmod(info, 0o640)
    try:
        listed = setup.as_pg("backup-list", setup.url, SERVER)
    finally:
        postgres = pwd.getpwnam(PG_USER)
        os.chown(info, postgres.pw_uid, postgres.pw_gid)
    assert listed.returncode == 1, listed.stderr
    line = _one_line_error(listed)
    assert info in line and "owned by root:root" in line, line
    assert "pgvault runs as postgres" in line and "run pgvault as root" in line, line


def test_wal_archive_into_a_directory_postgres_cannot_write(setup: Setup) -> None:
    closed = world_dir("pgvault-root-dest-")
    os.chown(closed, 0, 0)  # root's, 0755: postgres can read but not write
    wal = os.path.join(setup.cluster.data, "pg_wal")
    first = sorted(n for n in os.listdir(wal) if len(n) == 24)[0]
    segment = os.path.join(setup.state, first)
    as_postgres(["cp", os.path.join(wal, first), segment])
    # A destination postgres owns, whose WAL directory for this segment root made.
    opened = world_dir("pgvault-half-dest-")
    hashed = os.path.join(opened, SERVER, "wals", first[:16])
    os.makedirs(hashed)
    try:
        cases = ((closed, closed), (f"{closed}/sub", closed), (opened, hashed))
        for root, named in cases:
            result = setup.as_pg("wal-archive", f"file://{root}", SERVER, segment)
            assert result.returncode == 1, result.stderr
            line = _one_line_error(result)
            assert f"{named} (owned by root:root" in line, line
    finally:
        shutil.rmtree(closed, ignore_errors=True)
        shutil.rmtree(opened, ignore_errors=True)


def test_async_wal_archive_into_a_directory_postgres_cannot_enter_fails_at_once(
    pgvault_bin: str,
) -> None:
    """The fast path says what the synchronous one says, as soon as the pusher meets it: a
    pusher that could not list the destination used to die, and archive_command waited its
    60 s for a file that would never come, the cause only in the pusher's log."""
    root = world_dir("pgvault-root-server-")
    os.mkdir(os.path.join(root, SERVER), 0o750)  # a root-run backup made it first
    os.chown(os.path.join(root, SERVER), 0, 0)
    spool = world_dir("pgvault-closed-spool-")
    command = archive_command(
        pgvault_bin, f"file://{root}", "--async", "--spool-dir", spool, "--zstd"
    )
    cluster = make_cluster(archive_command=command)
    try:
        cluster.sql("select pg_switch_wal()")
        deadline = time.monotonic() + 30  # well inside archive_command's 60 s wait
        while cluster.one("select failed_count from pg_stat_archiver") == 0:
            assert time.monotonic() < deadline, cluster.server_log()[-2000:]
            time.sleep(0.2)
        failures = [line for line in cluster.server_log().splitlines() if "wal-archive" in line]
        assert any(f"{root}/{SERVER} (owned by root:root" in f for f in failures), failures
        assert not any("not stored within" in f for f in failures), failures
        assert "Traceback" not in cluster.server_log()
    finally:
        cluster.drop()
        stop_pushers(spool)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(spool, ignore_errors=True)


def test_restore_into_a_directory_postgres_cannot_create_or_read(setup: Setup) -> None:
    backup_id = setup.backup_as_root()
    chown_tree(setup.root)  # readable by postgres whatever wrote it: only the target is at stake
    closed = world_dir("pgvault-root-parent-")
    os.chown(closed, 0, 0)  # root's, 0755: postgres cannot create in it
    private = world_dir("pgvault-root-private-")
    os.chown(private, 0, 0)
    os.chmod(private, 0o700)  # an empty directory postgres cannot read
    spool = ["--wal-restore-dir", os.path.join(setup.state, "spool")]
    try:
        for target, named in ((os.path.join(closed, "data"), closed), (private, private)):
            result = setup.as_pg("restore", *spool, setup.url, SERVER, backup_id, target)
            assert result.returncode == 1, result.stderr
            line = _one_line_error(result)
            assert target in line and f"{named} (owned by root:root" in line, line
    finally:
        shutil.rmtree(closed, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
