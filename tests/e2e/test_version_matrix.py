"""Every supported PostgreSQL major through the same cycle, as an operator runs it.

One small cluster per major, archiving its WAL with `pgvault wal-archive` into a local
directory; a backup while rows are being written; more rows, a target time, more rows; a
`pgvault restore` to that time; the server of the same major started on it (with an empty
environment: only what the restore wrote); exactly the data of the target time is there.
pg_verifybackup of the same major checks the restored directory where one is installed
(15 to 18; the npm packages have no client tools, and none of 13 or 14 is installed). Two majors run
with WAL segments of other sizes than 16 MiB.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg2
import pytest

from core.catalog.reader import Catalog
from core.postgres.control import peek_system_identifier
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.pg_versions import (
    MAJORS,
    initdb_only,
    server_bindir,
    server_env,
    tool_env,
    verifybackup_bindir,
    versioned_cluster,
)
from tests.support.pitr import SERVER, new_target, restore, restored_server, wait_log
from tests.support.postgres import Cluster, as_postgres, wait_for_recovery_end, world_dir
from tests.support.restore import (
    barman_restore,
    restore_target,
    start_recovered,
    verify_with_pg_verifybackup,
)
from tests.support.wal import archive_command, pgvault_run, synthetic_segment

# Non-default WAL segment sizes (MiB) on some majors: names and LSN arithmetic must follow.
SEGMENT_MB = {14: 1, 17: 4}
MiB = 1024 * 1024


@contextmanager
def writing(cluster: Cluster) -> Iterator[list[int]]:
    """A connection inserting rows in a loop while the block runs; the count it wrote."""
    stop = threading.Event()
    written = [0]
    conn = cluster.connect()

    def load() -> None:
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute(
                    "insert into load select g, md5(g::text) from generate_series(1, 200) g"
                )
                written[0] += 200
                stop.wait(0.05)  # a little load: archiving keeps up on a busy machine

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        yield written
    finally:
        stop.set()
        thread.join(60)
        conn.close()


def _source(major: int, dest: TestDestination, pgvault_bin: str) -> Cluster:
    segment = SEGMENT_MB.get(major)
    cluster = versioned_cluster(
        major,
        archive_command=archive_command(pgvault_bin, dest.url, *dest.cli_args, "--zstd"),
        env=dest.env,
        initdb_args=[f"--wal-segsize={segment}"] if segment else [],
    )
    cluster.sql("create table accounts(id int primary key, owner text, balance numeric)")
    cluster.sql(
        "insert into accounts select g, 'owner ' || g, g * 1.5 from generate_series(1, 5000) g"
    )
    cluster.sql("create table load(id int, note text)")
    cluster.sql("create table marks(id int primary key, phase text)")
    return cluster


def _archive_everything(cluster: Cluster) -> None:
    segment = cluster.one("select pg_walfile_name(pg_current_wal_lsn())")
    cluster.sql("select pg_switch_wal()")
    cluster.wait_archived(segment, timeout=180)


def _verify(major: int, data: str) -> None:
    """pg_verifybackup of the same major, when one is installed, on the restored directory."""
    bindir = verifybackup_bindir(major)
    if bindir is None:
        return
    verified = as_postgres(
        [os.path.join(bindir, "pg_verifybackup"), "-n", data], env=tool_env(bindir), check=False
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _wait_promoted(server: Cluster, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(psycopg2.OperationalError):  # still starting
            if not server.one("select pg_is_in_recovery()"):
                return
        time.sleep(0.2)
    raise AssertionError(f"not promoted:\n{server.server_log()[-4000:]}")


def _drill_refuses_another_major(
    major: int, dest: TestDestination, backup_id: str, pgvault_bin: str
) -> None:
    """The restore drill starts the restored server: binaries of another major are refused
    before it restores anything."""
    other = 18 if major != 18 else 17
    work = world_dir("pgvault-drill-")
    try:
        refused = pgvault(
            "verify",
            "--restore-drill",
            "--pgvault-command",
            pgvault_bin,
            "--pg-bindir",
            server_bindir(other),
            "--drill-dir",
            work,
            *dest.cli_args,
            dest.url,
            SERVER,
            backup_id,
            env=dest.env,
        )
        assert refused.returncode == 1, refused.stderr
        assert f"taken on PostgreSQL {major} (" in refused.stderr
        assert f"holds PostgreSQL {other}:" in refused.stderr
        assert os.listdir(work) == []
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("major", MAJORS)
def test_backup_and_point_in_time_restore(
    major: int, make_dest: Callable[..., TestDestination], pgvault_bin: str
) -> None:
    dest = make_dest("file")
    cluster = _source(major, dest, pgvault_bin)
    target = new_target()
    try:
        assert cluster.major == major
        _archive_everything(cluster)  # the WAL archive runs before the first backup
        with writing(cluster) as written:
            before = written[0]
            result = pgvault(
                "backup",
                "--zstd",
                "--immediate-checkpoint",
                *cluster.conninfo_args(),
                *dest.cli_args,
                dest.url,
                SERVER,
                env=dest.env,
            )
            assert result.returncode == 0, result.stderr
            assert written[0] > before, "nothing was written during the backup"
        backup_id = result.stdout.strip()
        cluster.sql("insert into marks select g, 'before' from generate_series(1, 30) g")
        expected = cluster.table_checksums()
        time.sleep(0.3)
        target_time = cluster.one("select clock_timestamp()::text")
        time.sleep(0.3)
        cluster.sql("insert into marks select g, 'after' from generate_series(31, 60) g")
        cluster.sql("update accounts set balance = 0 where id <= 100")
        _archive_everything(cluster)

        shown = pgvault("backup-show", *dest.cli_args, dest.url, SERVER, backup_id, env=dest.env)
        assert shown.returncode == 0, shown.stderr
        version = int(cluster.one("show server_version_num"))
        assert version // 10000 == major
        release = f"{major}.{version % 10000}"  # as PostgreSQL names it: 13.23, not 130023
        assert f"  {'PostgreSQL version':<23}: {release}\n" in shown.stdout

        _drill_refuses_another_major(major, dest, backup_id, pgvault_bin)
        restore(dest, target, "latest", "--target-time", target_time, "--target-action", "promote")
        _verify(major, target.data)
        with restored_server(target, cluster.bindir, env=server_env(major)) as server:
            _wait_promoted(server)
            log = wait_log(server, "recovery stopping before commit of transaction")
            assert "consistent recovery state reached" in log
            assert server.major == major
            assert server.table_checksums() == expected
    finally:
        target.drop()
        cluster.drop()


def test_a_postgresql_18_backup_restores_with_barman_cloud(
    make_dest: Callable[..., TestDestination],
) -> None:
    """The object layout does not depend on the version: barman-cloud restores 18 too."""
    archive = world_dir("pgvault-wal-")
    cluster = versioned_cluster(18, archive_command=f"cp %p {archive}/%f")
    target = restore_target([])
    try:
        cluster.sql("create table t(id int primary key, note text)")
        cluster.sql("insert into t select g, md5(g::text) from generate_series(1, 20000) g")
        expected = cluster.table_checksums()
        dest = make_dest("s3")
        result = pgvault(
            "backup",
            "--gzip",
            "--immediate-checkpoint",
            "--no-wal-check",  # archive_command copies WAL to `archive`, which recovery reads
            *cluster.conninfo_args(),
            *dest.cli_args,
            dest.url,
            "pg18",
            env=dest.env,
        )
        assert result.returncode == 0, result.stderr
        backup_id = result.stdout.strip()
        with dest.store() as store:
            catalog = Catalog(store, "pg18")
            info = catalog.get(backup_id)
            assert info.version is not None and info.version // 10000 == 18
            assert info.data_checksums == "on"  # 18's initdb default
            manifest = catalog.postgres_manifest(backup_id)
        assert manifest is not None
        head = json.loads(manifest)
        assert head["PostgreSQL-Backup-Manifest-Version"] == 2
        assert str(head["System-Identifier"]) == cluster.one(
            "select system_identifier::text from pg_control_system()"
        )
        barman_restore(dest, "pg18", backup_id, target)
        bindir = server_bindir(18)
        verified = verify_with_pg_verifybackup(manifest, target, bindir, wal_dir=archive)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        restored = start_recovered(target, bindir, archive)
        try:
            wait_for_recovery_end(restored)
            assert restored.major == 18
            assert restored.table_checksums() == expected
        finally:
            restored.drop()
    finally:
        target.drop()
        cluster.drop()
        shutil.rmtree(archive, ignore_errors=True)


def test_small_wal_segments_past_the_256th_restore_with_prefetch(
    make_dest: Callable[..., TestDestination], pgvault_bin: str
) -> None:
    """With 1 MiB segments a timeline+log holds 4096 of them, so …00000100 follows …000000FF.

    restore_command (prefetching, as pgvault restore writes it) must deliver it: read with
    16 MiB arithmetic the name is invalid, and recovery would end there without a word.
    """
    pgdata = initdb_only(14, "--wal-segsize=1")
    sysid = peek_system_identifier(pgdata)
    assert sysid is not None
    dest = make_dest("file")
    spool = world_dir("pgvault-spool-")
    names = [f"0000000100000000{n:08X}" for n in range(0xFE, 0x104)]
    try:
        for name in names:
            path = os.path.join(spool, name)
            with open(path, "wb") as fh:
                fh.write(synthetic_segment(name, sysid=sysid, magic=0xD10D, size=MiB))
            archived = pgvault_run(pgvault_bin, "wal-archive", dest.url, SERVER, path)
            assert archived.returncode == 0, archived.stderr
        target = os.path.join(pgdata, "pg_wal", "RECOVERYXLOG")
        for name in names[1:4]:
            restored = pgvault_run(
                pgvault_bin,
                "wal-restore",
                "-p",
                "4",
                "--spool-dir",
                spool,
                dest.url,
                SERVER,
                name,
                target,
            )
            assert restored.returncode == 0, restored.stderr
            with open(target, "rb") as fh:
                assert fh.read() == synthetic_segment(name, sysid=sysid, magic=0xD10D, size=MiB)
    finally:
        shutil.rmtree(os.path.dirname(pgdata), ignore_errors=True)
        shutil.rmtree(spool, ignore_errors=True)
