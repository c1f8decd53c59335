"""`restore --table ... --clean` is all or nothing: the tables it replaces stay as they were
when the restore fails or is killed.

pg_restore -j --clean dropped each old table in a transaction of its own before creating
the new one, and a partitioned table was dropped before pg_restore even started: a restore
that failed on a conflicting name, or was killed while loading, left the target without its
old tables (or with a new one half-restored), exit 1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tests.support.cli import pgvault, spawn
from tests.support.destinations import TestDestination, make_destination
from tests.support.jobs import wait_for
from tests.support.logical import BINDIRS_ENV, SHOP, make_shop
from tests.support.pg_versions import versioned_cluster
from tests.support.postgres import Cluster, make_cluster

pytestmark = pytest.mark.xdist_group("logical-restore-clean")

SERVER = "clean-srv"
GROESSE = '"Lager Ü"."größe"'
#: the target's old rows, marked so that a replaced table shows
MARK_OLD = f"""
update {GROESSE} set "Menge" = -1;
delete from sales.events where id > 500;
update public.big set t = 'old' where g <= 10;
"""


@dataclass(frozen=True)
class Taken:
    cluster: Cluster
    dest: TestDestination
    backup_id: str


@pytest.fixture(scope="module", params=[15, 18], ids=["pg15", "pg18"])
def taken(request: pytest.FixtureRequest) -> Iterator[Taken]:
    cluster = make_cluster() if request.param == 15 else versioned_cluster(request.param)
    dest = make_destination("file", {})
    try:
        make_shop(cluster)
        cluster.sql(
            "create table public.big as select g, repeat(md5(g::text), 10) as t "
            "from generate_series(1, 300000) g",
            dbname=SHOP,
        )
        result = pgvault(
            "backup", dest.url, SERVER, *cluster.conninfo_args(), "--database", SHOP,
            env=BINDIRS_ENV,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        yield Taken(cluster, dest, result.stdout.strip())
    finally:
        cluster.drop()
        dest.drop()


def restore(taken: Taken, *flags: str, state: str = "") -> subprocess.CompletedProcess[str]:
    env = {**BINDIRS_ENV, **({"PGVAULT_STATE_DIR": state} if state else {})}
    return pgvault(
        "restore", taken.dest.url, SERVER, taken.backup_id, *taken.cluster.restore_flags(),
        "--database", SHOP, *flags, env=env,
    )  # fmt: skip


def restore_job(state: str) -> dict[str, Any]:
    listed = pgvault("jobs", "list", "--kind", "logical-restore", "--format", "json",
                     env={"PGVAULT_STATE_DIR": state})  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    (job,) = json.loads(listed.stdout)
    shown = pgvault("jobs", "show", str(job["id"]), "--format", "json",
                    env={"PGVAULT_STATE_DIR": state})  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    record: dict[str, Any] = json.loads(shown.stdout)
    return record


def old_target(taken: Taken, name: str) -> None:
    """A copy of the backup's database whose rows are marked old."""
    result = restore(taken, "--new-db-name", name)
    assert result.returncode == 0, result.stderr
    taken.cluster.sql(MARK_OLD, dbname=name)


def assert_old(pg: Cluster, name: str) -> None:
    assert pg.one(f'select count(*) from {GROESSE} where "Menge" = -1', dbname=name) == 500
    assert pg.one("select count(*) from sales.events", dbname=name) == 500
    assert pg.one("select count(*) from sales.events_a", dbname=name) == 500
    assert pg.one("select count(*) from public.big where t = 'old'", dbname=name) == 10


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_clean_table_restore_that_fails_keeps_the_old_tables(taken: Taken, jobs: str) -> None:
    """The new partitioned table's primary key collides with another table's index: the
    restore fails after the old tables were dropped and the new ones loaded."""
    pg, name = taken.cluster, f"clean_fails_{jobs}"
    old_target(taken, name)
    pg.sql(
        "alter index sales.events_pkey rename to events_pkey_old; "
        "create table sales.other (i int); create index events_pkey on sales.other (i)",
        dbname=name,
    )
    flags = ("--table", GROESSE, "--table", "sales.events", "--table", "public.big")
    result = restore(taken, *flags, "--into-db", name, "--clean", "-J", jobs)
    assert result.returncode == 1, result.stderr
    assert 'ERROR:  relation "events_pkey" already exists' in result.stderr
    assert "rolled back: the tables --clean would replace are as they were" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert_old(pg, name)
    # the same restore without the collision replaces them all, its progress counted
    pg.sql("drop table sales.other", dbname=name)
    state = tempfile.mkdtemp(prefix="pgvault-clean-state-")
    result = restore(taken, *flags, "--into-db", name, "--clean", "-J", jobs, state=state)
    assert result.returncode == 0, result.stderr
    job = restore_job(state)
    assert job["bytes_done"] == job["bytes_total"] and job["phase"] == "done", job
    assert job["result"]["tables_loaded"] == 3, job  # größe, big, events_a (events: none)
    assert pg.one("select count(*) from sales.events", dbname=name) == 1000
    assert pg.one(f'select count(*) from {GROESSE} where "Menge" = -1', dbname=name) == 0
    assert pg.table_checksums(name)["public.big"] == pg.table_checksums(SHOP)["public.big"]


def copying(pg: Cluster, name: str) -> bool:
    """Whether the restore's session is loading public.big's rows into database `name` (a
    LIKE pattern)."""
    return bool(
        pg.one(
            "select count(*) from pg_stat_activity where datname like %s "
            "and application_name like 'pgvault logical restore%%' "
            "and query like 'COPY public.big%%'",
            (name,),
        )
    )


def test_a_killed_clean_table_restore_keeps_the_old_tables(taken: Taken, tmp_path: Path) -> None:
    pg, name = taken.cluster, "clean_killed"
    old_target(taken, name)
    flags = ("--table", "public.big", "--table", GROESSE, "--table", "sales.events")
    flags += ("--staging-dir", str(tmp_path))  # what the killed restore leaves, away from others
    proc = spawn(
        "restore", taken.dest.url, SERVER, taken.backup_id, *pg.restore_flags(),
        "--database", SHOP, *flags, "--into-db", name, "--clean", env=BINDIRS_ENV,
    )  # fmt: skip
    wait_for(lambda: copying(pg, name), timeout=120, interval=0.02, what="COPY public.big")
    os.kill(proc.pid, signal.SIGKILL)  # its tools die with it (PR_SET_PDEATHSIG)
    proc.communicate(timeout=60)
    wait_for(lambda: not copying(pg, name), what="the restore's session to end")
    assert_old(pg, name)


def test_a_killed_clean_database_restore_keeps_the_old_database(
    taken: Taken, tmp_path: Path
) -> None:
    """A database is loaded under a temporary name and replaces the old one once complete."""
    pg, name = taken.cluster, "clean_db_killed"
    old_target(taken, name)
    proc = spawn(
        "restore", taken.dest.url, SERVER, taken.backup_id, *pg.restore_flags(),
        "--database", SHOP, "--new-db-name", name, "--clean", "--staging-dir", str(tmp_path),
        env=BINDIRS_ENV,
    )  # fmt: skip
    loading = "pgvault\\_restore\\_%"
    wait_for(lambda: copying(pg, loading), timeout=120, interval=0.02, what="COPY public.big")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    wait_for(lambda: not copying(pg, loading), what="the restore's session to end")
    assert_old(pg, name)


def test_a_partition_restored_alone_brings_its_parents_sequence(taken: Taken) -> None:
    """Its default is nextval of the sequence sales.events owns (see test_logical_partitions:
    here on PostgreSQL 18 too)."""
    pg = taken.cluster
    pg.sql("create database alone")
    result = restore(taken, "--table", "sales.events_a", "--into-db", "alone")
    assert result.returncode == 0, result.stderr
    assert pg.one("select count(*) from sales.events_a", dbname="alone") == 1000
    new = "insert into sales.events_a (payload) values ('new') returning id"
    assert pg.one(new, dbname="alone") == 1001


def test_a_clean_database_restore_that_cannot_take_the_name_keeps_the_old_one(
    taken: Taken, tmp_path: Path
) -> None:
    """A session on the database being loaded (a monitoring agent that connects to every
    database) makes its rename fail: the old database was dropped first, and the restore
    failed with the old one gone and the copy under its temporary name."""
    pg, name = taken.cluster, "clean_db_held"
    old_target(taken, name)
    proc = spawn(
        "restore", taken.dest.url, SERVER, taken.backup_id, *pg.restore_flags(),
        "--database", SHOP, "--new-db-name", name, "--clean", "--staging-dir", str(tmp_path),
        env=BINDIRS_ENV,
    )  # fmt: skip
    loading = wait_for(lambda: temporary(pg), timeout=120, what="the database being loaded")
    held = pg.connect(loading)
    try:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, err
        *_, last = err.strip().splitlines()  # (a warning before: the copy is not dropped)
        assert f"the existing database {name} is as it was" in last, err
        assert f"the restored copy is left as {loading}: drop it)" in last
        assert "Traceback" not in err
        assert_old(pg, name)
        assert pg.one("select datallowconn from pg_database where datname = %s", (name,))
        assert [d for d in databases(pg) if d.startswith("pgvault_replaced_")] == []
    finally:
        held.close()
        pg.sql(f'drop database if exists "{loading}" with (force)')


def temporary(pg: Cluster) -> str | None:
    """The database a restore is loading, once it exists."""
    rows = pg.sql("select datname from pg_database where datname like 'pgvault\\_restore\\_%'")
    return str(rows[0][0]) if rows else None


def databases(pg: Cluster) -> set[str]:
    return {r[0] for r in pg.sql("select datname from pg_database")}


def test_a_clean_database_restore_ends_the_old_ones_sessions(taken: Taken) -> None:
    """The old database is set aside (its sessions ended) and dropped once replaced."""
    pg, name = taken.cluster, "clean_db_busy"
    old_target(taken, name)
    session = pg.connect(name)
    try:
        result = restore(taken, "--new-db-name", name, "--clean")
        assert result.returncode == 0, result.stderr
        with pytest.raises(psycopg2.OperationalError):  # ended
            session.cursor().execute("select 1")
    finally:
        session.close()
    assert pg.one(f'select count(*) from {GROESSE} where "Menge" = -1', dbname=name) == 0
    assert pg.one("select datallowconn from pg_database where datname = %s", (name,))
    assert [d for d in databases(pg) if d.startswith("pgvault_")] == []
