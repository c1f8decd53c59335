"""Logical restores that go wrong: killed midway, a --clean that could not finish, a --table
backup restored as a database, pg_restore's own error, a referenced table under --clean, a
name a restore finds, a staging directory as small as a table restore needs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.catalog.backup_info import DONE, BackupInfo, serialize
from tests.support.cli import pgvault, spawn
from tests.support.destinations import TestDestination
from tests.support.jobs import wait_for
from tests.support.logical import BINDIRS_ENV, SHOP, make_shop
from tests.support.postgres import Cluster, make_cluster

pytestmark = pytest.mark.xdist_group("logical-restore-faults")

SERVER = "faults-srv"
MIXED = '"Mixed Schema"."quo""ted tbl"'
TEMPORARY = "select datname from pg_database where datname like 'pgvault\\_restore\\_%'"


@dataclass(frozen=True)
class Taken:
    cluster: Cluster
    dest: TestDestination
    full: str  # a backup of the shop database, named "full"
    subset: str  # --table 'sales.*' --table MIXED, named "subset"


@pytest.fixture(scope="module")
def taken() -> Iterator[Taken]:
    from tests.support.destinations import make_destination

    cluster = make_cluster()
    dest = make_destination("file", {})
    try:
        make_shop(cluster)
        cluster.sql(
            'create schema "Mixed Schema"; '
            f"create table {MIXED} (id integer primary key, v text); "
            f"insert into {MIXED} select g, md5(g::text) from generate_series(1, 50) g; "
            "create table public.big as select g, repeat(md5(g::text), 10) as t "
            "from generate_series(1, 200000) g; create index big_g on public.big (g); "
            "create table parent (id int primary key); "
            "create table child (id int primary key, parent_id int references parent); "
            "insert into parent select generate_series(1, 10); "
            "insert into child select g, 1 + g % 10 from generate_series(1, 30) g",
            dbname=SHOP,
        )
        ids = []
        for name, flags in (("full", ()), ("subset", ("--table", "sales.*", "--table", MIXED))):
            result = pgvault(
                "backup", dest.url, SERVER, *cluster.conninfo_args(), "--database", SHOP,
                "-n", name, *flags, env=BINDIRS_ENV,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            ids.append(result.stdout.strip())
        yield Taken(cluster, dest, ids[0], ids[1])
    finally:
        cluster.drop()
        dest.drop()


def restore(taken: Taken, backup: str, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    return pgvault(
        "restore", taken.dest.url, SERVER, backup, *taken.cluster.restore_flags(), *flags,
        env={**BINDIRS_ENV, **env},
    )  # fmt: skip


def databases(cluster: Cluster) -> set[str]:
    return {r[0] for r in cluster.sql("select datname from pg_database")}


def temporary(cluster: Cluster) -> list[str]:
    return [r[0] for r in cluster.sql(TEMPORARY)]


def pg_restores(staging: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"pg_restore" in cmdline and str(staging).encode() in cmdline:
            found.append(int(entry))
    return found


def only_job(state: str) -> dict[str, Any]:
    listed = pgvault("jobs", "list", "--kind", "logical-restore", "--format", "json",
                     env={"PGVAULT_STATE_DIR": state})  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    (job,) = json.loads(listed.stdout)
    assert isinstance(job, dict)
    return job


def test_a_killed_restore_leaves_nothing_under_the_asked_name(taken: Taken, tmp_path: Path) -> None:
    pg, staging, state = taken.cluster, tmp_path / "staging", tempfile.mkdtemp()
    staging.mkdir()
    flags = ("--database", SHOP, "--new-db-name", "bigk", "-J", "1", "--staging-dir", str(staging))
    proc = spawn(
        "restore", taken.dest.url, SERVER, taken.full, *pg.restore_flags(), *flags,
        env={**BINDIRS_ENV, "PGVAULT_STATE_DIR": state},
    )  # fmt: skip
    for pid in wait_for(lambda: pg_restores(staging), timeout=120, what="pg_restore"):
        os.kill(pid, signal.SIGSTOP)  # held midway until pgvault's kill ends it
    wait_for(lambda: only_job(state)["phase"] == "restore", what="the restore phase recorded")
    proc.kill()
    proc.communicate(timeout=60)
    wait_for(lambda: not pg_restores(staging), what="pg_restore to die with pgvault")
    assert "bigk" not in databases(pg)
    (left,) = temporary(pg)  # named as a restore's, and this restore's (its PID)
    assert left.endswith(f"_{proc.pid}")
    assert [p.name for p in staging.iterdir() if p.name.startswith("pgvault-logical-")]
    job = wait_for(lambda: (j := only_job(state))["state"] != "running" and j, what="job failed")
    assert job["state"] == "failed", job
    assert job["bytes_done"] < job["bytes_total"] and job["files_done"] < job["files_total"]

    again = restore(taken, taken.full, *flags, "-v")
    assert again.returncode == 0, again.stderr
    assert f"dropped database {left}, left by a killed logical restore" in again.stderr
    assert "removed the staging directory of a killed logical backup or restore" in again.stderr
    assert temporary(pg) == [] and os.listdir(staging) == []
    assert pg.table_checksums("bigk") == pg.table_checksums(SHOP)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--new-db-name", "postgres"], "--clean cannot replace database 'postgres': this "
         "restore connects to it (-d)"),
        (["-d", "dbname=template1", "--new-db-name", "template1"], "connects to it"),
        (["--new-db-name", "template0"], "it is a template database"),
    ],
)  # fmt: skip
def test_a_clean_that_cannot_drop_its_target_is_refused_first(
    taken: Taken, flags: list[str], message: str
) -> None:
    before = databases(taken.cluster)
    result = restore(taken, taken.full, "--database", SHOP, "--clean", *flags)
    assert result.returncode == 3, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert databases(taken.cluster) == before


def test_a_table_backup_restores_as_a_database_with_its_schemas(taken: Taken) -> None:
    pg = taken.cluster
    result = restore(taken, "latest", "--database", SHOP, "--new-db-name", "tabsdb", "-v")
    assert result.returncode == 0, result.stderr
    assert f"logical backup {taken.subset} holds only" in result.stderr
    assert f"(taken with --table sales.* --table {MIXED})" in result.stderr
    assert pg.one(f"select count(*) from {MIXED}", dbname="tabsdb") == 50
    assert pg.one("select count(*) from sales.orders", dbname="tabsdb") == 2000
    assert pg.one("select to_regclass('public.big')", dbname="tabsdb") is None


def test_pg_restores_error_line_is_the_message_and_the_table_is_removed(taken: Taken) -> None:
    pg = taken.cluster
    pg.sql("create database clash")
    pg.sql("create schema sales; create table sales.other (i int); "
           "create index orders_customer on sales.other (i)", dbname="clash")  # fmt: skip
    result = restore(taken, taken.full, "--database", SHOP, "--table", "sales.orders",
                     "--into-db", "clash", "--no-foreign-keys")  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert 'ERROR:  relation "orders_customer" already exists' in result.stderr
    assert "Command was: CREATE INDEX orders_customer" in result.stderr
    # what the target holds now
    assert "(the tables it created are dropped (sales.orders); the others are as they were)" in (
        result.stderr
    )
    assert result.stderr.count("\n") == 1
    assert pg.one("select to_regclass('sales.orders')", dbname="clash") is None


def test_clean_of_a_referenced_table_is_refused_unless_its_referrer_comes_too(
    taken: Taken,
) -> None:
    pg = taken.cluster
    assert restore(taken, taken.full, "--database", SHOP, "--new-db-name", "fk").returncode == 0
    pg.sql("delete from child where id > 20", dbname="fk")
    refused = restore(taken, taken.full, "--database", SHOP, "--table", "public.parent",
                      "--into-db", "fk", "--clean")  # fmt: skip
    assert refused.returncode == 3, refused.stderr
    assert (
        "--clean cannot replace table public.parent (referenced by foreign key "
        "child_parent_id_fkey of table public.child)" in refused.stderr
    )
    assert pg.one("select count(*) from child", dbname="fk") == 20
    both = restore(taken, taken.full, "--database", SHOP, "--table", "public.parent",
                   "--table", "public.child", "--into-db", "fk", "--clean")  # fmt: skip
    assert both.returncode == 0, both.stderr
    assert pg.one("select count(*) from child", dbname="fk") == 30
    flags = ("--table", "public.parent", "--table", "public.child", "--into-db", "fk")
    alone = restore(taken, taken.full, "--database", SHOP, *flags, "--clean", "--no-foreign-keys")
    assert alone.returncode == 3 and "child_parent_id_fkey" in alone.stderr, alone.stderr
    # a view the table restore does not bring back: DROP TABLE would fail on it
    lines = ("--table", "sales.orders", "--table", "sales.order_lines", "--into-db", "fk")
    viewed = restore(taken, taken.full, "--database", SHOP, *lines, "--clean")
    assert viewed.returncode == 3, viewed.stderr
    assert "table sales.orders (read by view sales.order_totals)" in viewed.stderr


def test_a_name_finds_its_backup_as_an_id_does(taken: Taken) -> None:
    pg = taken.cluster
    absent = restore(taken, "full", "--database", "nosuch")
    assert absent.returncode == 3, absent.stderr
    assert f"logical backup {taken.full} holds no database 'nosuch'" in absent.stderr
    pg.sql("create database named1")
    pg.sql("create table t (i int); insert into t values (1), (2)", dbname="named1")
    taken1 = pgvault("backup", taken.dest.url, SERVER, *pg.conninfo_args(),
                     "--database", "named1", "-n", "n1", env=BINDIRS_ENV)  # fmt: skip
    assert taken1.returncode == 0, taken1.stderr
    pg.sql("drop database named1")
    by_name = restore(taken, "n1", "-d", "dbname=template1")  # no --database: it holds one
    assert by_name.returncode == 0, by_name.stderr
    assert pg.one("select count(*) from t", dbname="named1") == 2


def test_a_physical_backup_given_logical_flags_is_named_physical(taken: Taken) -> None:
    """-d without RECOVERY_DIR makes a logical restore: a physical backup's ID or name is
    then bad input that says what it is, not 'no logical backup named'."""
    physical = BackupInfo(
        backup_id="20261201T010101", status=DONE, backup_name="phys1", timeline=1,
        begin_wal="000000010000000000000002", end_wal="000000010000000000000002",
    )  # fmt: skip
    with taken.dest.store() as store:
        store.put_bytes(f"{SERVER}/base/{physical.backup_id}/backup.info", serialize(physical))
    for reference in (physical.backup_id, "phys1"):
        refused = restore(taken, reference, "-d", "dbname=template1")
        assert refused.returncode == 3, refused.stderr
        assert f"backup {physical.backup_id} of server {SERVER} is a physical backup" in (
            refused.stderr
        )
    unknown = restore(taken, "nosuchname", "-d", "dbname=template1")
    assert unknown.returncode == 1 and "no logical backup named 'nosuchname'" in unknown.stderr


def test_a_table_restore_needs_staging_for_its_tables_only(
    taken: Taken, small_disk: Callable[[str], str]
) -> None:
    staging = small_disk("2m")
    taken.cluster.sql("create database star2")
    flags = ("--database", SHOP, "--staging-dir", staging)
    result = restore(taken, taken.full, *flags, "--table", "sales.customers", "--into-db", "star2")
    assert result.returncode == 0, result.stderr
    assert taken.cluster.one("select count(*) from sales.customers", dbname="star2") == 200
    whole = restore(taken, taken.full, *flags, "--new-db-name", "star3")
    assert whole.returncode == 1 and "staging needs" in whole.stderr, whole.stderr
    assert "star3" not in databases(taken.cluster)
