"""A partitioned table in a logical backup and restore: its rows are in its partitions.

pg_dump -t of a partitioned table dumps the empty parent alone, and a table restore that
kept the partitions' CREATE TABLE but dropped their ATTACH PARTITION left them as tables of
their own: both restored a partitioned table with no rows, exit 0."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.support.cli import pgvault
from tests.support.destinations import TestDestination, make_destination
from tests.support.logical import BINDIRS_ENV, SHOP, make_shop
from tests.support.postgres import Cluster, make_cluster

SERVER = "parts-srv"
# sales.events (partitioned by range) holds its 1000 rows in sales.events_a; a second level:
DEEPER = """
create table sales.events_b partition of sales.events for values from (1000000) to (3000000)
    partition by range (id);
create table sales.events_b1 partition of sales.events_b for values from (1000000) to (2000000);
create index events_at on sales.events (at);
insert into sales.events (id, payload) select g, 'deep' from generate_series(1000001, 1000050) g;
create table public.measures (at date primary key, v int) partition by range (at);
create table public.measures_2026 partition of public.measures
    for values from ('2026-01-01') to ('2027-01-01');
insert into public.measures
    select d, 1 from generate_series('2026-01-01'::date, '2026-12-31', '1 day') d;
"""


@pytest.fixture(scope="module")
def shop() -> Iterator[tuple[Cluster, TestDestination]]:
    cluster = make_cluster()
    dest = make_destination("file", {})
    try:
        make_shop(cluster)
        cluster.sql(DEEPER, dbname=SHOP)
        yield cluster, dest
    finally:
        cluster.drop()
        dest.drop()


def backup(pg: Cluster, dest: TestDestination, *flags: str) -> str:
    result = pgvault(
        "backup", dest.url, SERVER, *pg.conninfo_args(), "--database", SHOP, *flags,
        env=BINDIRS_ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def restore(pg: Cluster, dest: TestDestination, *flags: str) -> subprocess.CompletedProcess[str]:
    return pgvault(
        "restore", dest.url, SERVER, *flags, *pg.restore_flags(), "--database", SHOP,
        env=BINDIRS_ENV,
    )  # fmt: skip


def assert_events(pg: Cluster, dbname: str) -> None:
    """Every row through the partitioned table, each partition attached, indexes valid."""
    assert pg.one("select count(*) from sales.events", dbname=dbname) == 1050
    assert pg.one("select count(*) from sales.events_b1", dbname=dbname) == 50
    attached = pg.sql(
        "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid order by 1",
        dbname=dbname,
    )
    assert [r[0] for r in attached if r[0].startswith("events")] == [
        "events_a",
        "events_a_at_idx",
        "events_a_pkey",
        "events_b",
        "events_b1",
        "events_b1_at_idx",
        "events_b1_pkey",
        "events_b_at_idx",
        "events_b_pkey",
    ]
    assert pg.one("select count(*) from pg_index where not indisvalid", dbname=dbname) == 0


def test_a_table_backup_of_a_partitioned_table_holds_its_partitions(
    shop: tuple[Cluster, TestDestination],
) -> None:
    pg, dest = shop
    backup_id = backup(pg, dest, "--table", "sales.events")
    shown = pgvault("backup-show", dest.url, SERVER, backup_id)
    assert "events_b1" in shown.stdout, shown.stdout
    result = restore(pg, dest, backup_id, "--new-db-name", "events_copy", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert_events(pg, "events_copy")
    # --format json was ignored (the database's name in plain text); 'tables' names what the
    # --table backup held, not 'database' as if it were whole
    done = json.loads(result.stdout)
    assert done["target_database"] == "events_copy"
    assert done["tables"] == [
        "sales.events",
        "sales.events_a",
        "sales.events_b",
        "sales.events_b1",
    ]
    assert done["summary"].startswith("restored tables sales.events, sales.events_a")


def test_a_partitioned_table_restored_out_of_a_database_backup_has_its_rows(
    shop: tuple[Cluster, TestDestination],
) -> None:
    pg, dest = shop
    backup_id = backup(pg, dest, "-J", "2")
    pg.sql("create database events_into")
    flags = ("--table", "sales.events", "--into-db", "events_into")
    result = restore(pg, dest, backup_id, *flags)
    assert result.returncode == 0, result.stderr
    assert_events(pg, "events_into")
    # --clean replaces it: pg_restore's own --clean cannot drop a partition's inherited keys
    pg.sql("insert into sales.events (payload) values ('after')", dbname="events_into")
    result = restore(pg, dest, backup_id, *flags, "--clean")
    assert result.returncode == 0, result.stderr
    assert_events(pg, "events_into")


def test_a_backup_of_one_partition_restores_as_a_database(
    shop: tuple[Cluster, TestDestination],
) -> None:
    """Its ATTACH PARTITION names a partitioned table the backup does not hold: left out,
    the partition is a table of its own (pg_restore failed on it, exit 1)."""
    pg, dest = shop
    backup_id = backup(pg, dest, "--table", "public.measures_2026")
    result = restore(pg, dest, backup_id, "--new-db-name", "one_partition")
    assert result.returncode == 0, result.stderr
    assert pg.one("select count(*) from measures_2026", dbname="one_partition") == 365
    assert pg.one("select count(*) from pg_inherits", dbname="one_partition") == 0
