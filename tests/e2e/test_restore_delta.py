"""`pgvault --batch restore --delta`: a cluster re-seeded in place from its own backup.

The source changes after its backup (5% of a table updated, a table dropped, a table and a
database created), stops, and the backup is restored over its own data directory to the
backup's end (--target-immediate): PostgreSQL then holds exactly the backup's data,
pg_verifybackup finds no file too many or too few, and the files that did not change are
the very files that were there (same inode, same ctime). Refusals: a running server's
directory, another cluster's (unless --force), and without --delta any non-empty one.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.destinations import make_destination
from tests.support.pitr import (
    SERVER,
    Source,
    Target,
    make_source,
    new_target,
    restore,
    restored_server,
    wait_log,
)
from tests.support.postgres import add_tablespace, make_cluster, wait_for_recovery_end

IMMEDIATE = ("--target-immediate", "--target-action", "promote")
ROWS = 100_000  # pgbench_accounts at scale 1


def _tables(source: Source) -> dict[str, tuple[int, str]]:
    return source.cluster.table_checksums()


@pytest.fixture
def source(pgvault_bin: str) -> Iterator[Source]:
    """A cluster archiving to a local directory, with a table to drop after its backup."""
    dest = make_destination("file", {})
    made = make_source(dest, pgvault_bin, scale=1)
    made.cluster.sql("create table doomed as select g as id from generate_series(1, 5000) g")
    made.cluster.sql("create database shop")
    made.cluster.sql(
        "create table orders as select g as id from generate_series(1, 500) g", dbname="shop"
    )
    try:
        yield made
    finally:
        made.cluster.drop()
        dest.drop()


def _backup(source: Source, *flags: str) -> str:
    # Hint bits set later (autovacuum's analyze) would change the files of untouched tables.
    source.cluster.sql("vacuum freeze")
    backup = source.backup(*flags)
    source.archive_everything()
    return backup


def _identity(path: str) -> tuple[int, int]:
    """Changed by any write, truncation or utime of the file (a kept file has none)."""
    st = os.stat(path)
    return st.st_ino, st.st_ctime_ns


def _relation_path(source: Source, table: str) -> str:
    relative = source.cluster.one(f"select pg_relation_filepath('{table}')")
    return os.path.join(source.cluster.data, relative)


# A plain tar is read by ranges (only the files to write); a compressed one is streamed
# whole, the files kept in place not written.
@pytest.mark.parametrize("compression", [(), ("--zstd",)], ids=["plain", "zstd"])
def test_a_stopped_cluster_is_re_seeded_from_its_backup(
    source: Source, compression: tuple[str, ...]
) -> None:
    cluster = source.cluster
    backup = _backup(source, *compression)
    expected = _tables(source)
    shop = cluster.table_checksums("shop")
    untouched = _relation_path(source, "pgbench_branches")
    untouched_before = _identity(untouched)
    # About 5% of pgbench_accounts' pages, a dropped table, a new table, a new database.
    cluster.sql(f"update pgbench_accounts set abalance = abalance + 1 where aid <= {ROWS // 20}")
    cluster.sql("drop table doomed")
    cluster.sql("create table newcomer as select g from generate_series(1, 1000) g")
    cluster.sql("create database latecomer")
    cluster.sql("drop database shop")  # its directory comes back whole, owned as the rest
    # pg_class moves to a new file: pg_filenode.map changes, its CRC-32C cannot tell.
    cluster.sql("vacuum full pg_class")
    cluster.sql("checkpoint")
    cluster.stop()
    target = Target(cluster.base)  # the source's own data directory, base/data
    wal = os.path.join(cluster.data, "pg_wal")
    if compression:  # a standby's pg_wal on its own volume: streamed archives keep the link
        os.rename(wal, os.path.join(cluster.base, "wal-volume"))
        os.symlink(os.path.join(cluster.base, "wal-volume"), wal)

    result = restore(source.dest, target, backup, "--delta", "-v", *IMMEDIATE)

    assert "kept as they were" in result.stderr, result.stderr
    assert _identity(untouched) == untouched_before  # kept, never rewritten
    assert os.path.islink(wal) == bool(compression)
    assert sorted(os.listdir(os.path.join(cluster.data, "pg_wal"))) == ["archive_status"]
    assert not os.listdir(os.path.join(cluster.data, "pg_wal", "archive_status"))
    assert not os.path.exists(os.path.join(cluster.data, "postmaster.opts"))
    verified = subprocess.run(
        [f"{cluster.bindir}/pg_verifybackup", "-n", cluster.data], capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stderr + verified.stdout
    with restored_server(target, cluster.bindir) as server:
        wait_for_recovery_end(server)
        wait_log(server, "recovery stopping after reaching consistency")
        assert server.table_checksums() == expected
        assert server.table_checksums("shop") == shop
        server.sql("create table written_after as select 1 as x", dbname="shop")
        databases = {row[0] for row in server.sql("select datname from pg_database")}
        assert "latecomer" not in databases


def test_a_delta_restore_into_a_new_directory_is_a_full_restore(source: Source) -> None:
    backup = _backup(source)
    expected = _tables(source)
    target = new_target()
    try:
        restore(source.dest, target, backup, "--delta", *IMMEDIATE)
        with restored_server(target, source.cluster.bindir) as server:
            wait_for_recovery_end(server)
            assert server.table_checksums() == expected
            server.sql("create table written_after as select 1 as x")
    finally:
        target.drop()


def test_a_running_server_is_never_touched(source: Source) -> None:
    backup = _backup(source)
    cluster = source.cluster
    before = sorted(os.listdir(cluster.data))
    control = _identity(os.path.join(cluster.data, "global", "pg_control"))
    result = restore(source.dest, Target(cluster.base), backup, "--delta", check=False)
    assert result.returncode == 1, result.stderr
    assert "is running on" in result.stderr and result.stderr.count("\n") == 1
    assert sorted(os.listdir(cluster.data)) == before
    assert _identity(os.path.join(cluster.data, "global", "pg_control")) == control
    assert cluster.is_running()


def test_another_clusters_directory_is_refused_unless_forced(source: Source) -> None:
    backup = _backup(source)
    other = make_cluster(start=False)
    try:
        target = Target(other.base)
        before = sorted(os.listdir(other.data))
        refused = restore(source.dest, target, backup, "--delta", *IMMEDIATE, check=False)
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr.count("\n") == 1
        mine = source.cluster.one("select system_identifier from pg_control_system()")
        theirs = subprocess.run(
            [f"{other.bindir}/pg_controldata", other.data], capture_output=True, text=True
        ).stdout
        other_id = next(
            line.split(":")[1].strip()
            for line in theirs.splitlines()
            if line.startswith("Database system identifier")
        )
        assert f"system {other_id}" in refused.stderr and f"system {mine}" in refused.stderr
        assert sorted(os.listdir(other.data)) == before

        forced = restore(
            source.dest, target, backup, "--delta", "--force", "--format", "json", *IMMEDIATE
        )
        document = json.loads(forced.stdout)
        # initdb writes the same catalog files: those are kept even from another cluster
        assert document["kept_files"] > 0 and document["kept_bytes"] > 0
        assert document["files"] > 0
        verified = subprocess.run(
            [f"{other.bindir}/pg_verifybackup", "-n", other.data], capture_output=True, text=True
        )
        assert verified.returncode == 0, verified.stderr + verified.stdout
    finally:
        other.drop()


def test_a_delta_restore_refused_before_it_starts_says_nothing_of_pg_control(
    source: Source,
) -> None:
    # Found by running the README: a delta restore that the WAL check refused logged "has
    # no global/pg_control until a delta restore finishes; run it again" although nothing
    # of the directory had been touched (pg_control still there, the server starting).
    backup = _backup(source)
    hole = source.cluster.one("select pg_walfile_name(pg_current_wal_lsn())")
    for step in range(2):
        source.cluster.sql(f"create table after_{step} as select 1 as x")
        source.archive_everything()
    wals = Path(source.dest.url.removeprefix("file://"), SERVER, "wals")
    removed = [path for path in wals.rglob(f"*{hole}*") if path.is_file()]
    for path in removed:
        path.unlink()
    assert removed, sorted(str(p) for p in wals.rglob("*"))
    cluster = source.cluster
    cluster.stop()
    control = _identity(os.path.join(cluster.data, "global", "pg_control"))
    refused = restore(source.dest, Target(cluster.base), backup, "--delta", "-v", check=False)
    assert refused.returncode == 1, refused.stderr
    assert f"first missing segment {hole}" in refused.stderr, refused.stderr
    assert "pg_control" not in refused.stderr, refused.stderr
    assert _identity(os.path.join(cluster.data, "global", "pg_control")) == control


def test_without_delta_a_cluster_directory_is_still_refused(source: Source) -> None:
    backup = _backup(source)
    source.cluster.stop()
    refused = restore(source.dest, Target(source.cluster.base), backup, check=False)
    assert refused.returncode == 3, refused.stderr
    assert "is not empty" in refused.stderr and "--delta" in refused.stderr
    assert os.path.exists(os.path.join(source.cluster.data, "global", "pg_control"))


def test_a_tablespace_is_re_seeded_in_its_own_location(source: Source) -> None:
    cluster = source.cluster
    location = add_tablespace(cluster, "ts1")
    cluster.sql(
        "create table spaced tablespace ts1 as select g as id from generate_series(1, 3000) g"
    )
    cluster.sql(
        "create table spaced_too tablespace ts1 as select g as id from generate_series(1, 3000) g"
    )
    backup = _backup(source)
    expected = _tables(source)
    kept = _relation_path(source, "spaced_too")
    kept_before = _identity(kept)
    cluster.sql("update spaced set id = -id where id <= 150")
    cluster.sql("create table spaced_later tablespace ts1 as select 1 as id")
    later = _relation_path(source, "spaced_later")
    cluster.sql("checkpoint")
    cluster.stop()
    # What another major left in the location (pg_upgrade's old cluster) is not the backup's.
    old = os.path.join(location, "PG_9.6_201608131", "16384", "1234")
    os.makedirs(os.path.dirname(old))
    Path(old).write_bytes(b"an old cluster's relation")

    restore(source.dest, Target(cluster.base), backup, "--delta", *IMMEDIATE)

    assert Path(old).read_bytes() == b"an old cluster's relation"

    assert _identity(kept) == kept_before
    assert not os.path.exists(later)
    with restored_server(Target(cluster.base), cluster.bindir) as server:
        wait_for_recovery_end(server)
        assert server.table_checksums() == expected
        assert (
            server.one(
                "select pg_tablespace_location(oid) from pg_tablespace where spcname = 'ts1'"
            )
            == location
        )


def test_a_tablespace_of_another_data_directory_is_never_rewritten(source: Source) -> None:
    """A copy restored beside its source with --delta would rewrite the source's tablespace
    (same location): refused while the source runs (exit 1), refused once it is stopped
    because the location is not the copy's own (exit 3), and written when relocated."""
    cluster = source.cluster
    location = add_tablespace(cluster, "ts1")
    cluster.sql(
        "create table spaced tablespace ts1 as select g as id from generate_series(1, 3000) g"
    )
    backup = _backup(source)
    expected = _tables(source)
    cluster.sql("insert into spaced select g from generate_series(3001, 4000) g")
    cluster.sql("checkpoint")
    files_before = {p: _identity(str(p)) for p in Path(location).rglob("*") if p.is_file()}

    target = new_target()
    try:
        running = restore(source.dest, target, backup, "--delta", *IMMEDIATE, check=False)
        assert running.returncode == 1, running.stderr
        assert f"is used by the PostgreSQL server running on {cluster.data}" in running.stderr
        assert "--tablespace ts1:LOCATION" in running.stderr
        cluster.stop()
        stopped = restore(source.dest, target, backup, "--delta", *IMMEDIATE, check=False)
        assert stopped.returncode == 3, stopped.stderr
        assert "is not empty and is not" in stopped.stderr and "own" in stopped.stderr
        assert {p: _identity(str(p)) for p in Path(location).rglob("*") if p.is_file()} == (
            files_before
        )
        assert not os.path.exists(os.path.join(target.data, "PG_VERSION"))

        elsewhere = os.path.join(target.base, "ts1")
        restore(
            source.dest, target, backup, "--delta", "--tablespace", f"ts1:{elsewhere}", *IMMEDIATE
        )
        with restored_server(target, cluster.bindir) as server:
            wait_for_recovery_end(server)
            assert server.table_checksums() == expected
    finally:
        target.drop()
    cluster.start()
    assert cluster.one("select count(*) from spaced") == 4000
