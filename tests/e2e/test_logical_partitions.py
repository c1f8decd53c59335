"""A partitioned table in a logical backup and restore: its rows are in its partitions.

pg_dump -t of a partitioned table dumps the empty parent alone, and a table restore that
kept the partitions' CREATE TABLE but dropped their ATTACH PARTITION left them as tables of
their own: both restored a partitioned table with no rows, exit 0."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from core.logical.layout import LogicalLayout
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


def insert_event(pg: Cluster, dbname: str, table: str = "sales.events_a") -> int:
    """The id the column default gives a new row (nextval of sales.events' sequence)."""
    return int(pg.one(f"insert into {table} (payload) values ('new') returning id", dbname=dbname))


def test_a_partition_restored_without_its_parent_brings_the_parents_sequence(
    shop: tuple[Cluster, TestDestination],
) -> None:
    """sales.events_a's default is nextval of sales.events_id_seq, owned by sales.events: a
    table restore of the partition alone, or a --table backup of it, failed with pg_restore's
    'relation "sales.events_id_seq" does not exist' (exit 1)."""
    pg, dest = shop
    backup_id = backup(pg, dest)
    pg.sql("create database seq_into")
    flags = ("--table", "sales.events_a", "--into-db", "seq_into", "-v")
    result = restore(pg, dest, backup_id, *flags)
    assert result.returncode == 0, result.stderr
    assert "restoring sequence sales.events_id_seq (a restored table's column default" in (
        result.stderr
    )
    assert pg.one("select count(*) from sales.events_a", dbname="seq_into") == 1000
    assert pg.one("select to_regclass('sales.events')", dbname="seq_into") is None
    assert insert_event(pg, "seq_into") == 1001  # the sequence's value came with it
    # replaced with --clean: the target's sequence stays (its default uses it), the rows go
    result = restore(pg, dest, backup_id, *flags, "--clean")
    assert result.returncode == 0, result.stderr
    assert "sequence sales.events_id_seq, which a restored table's column default uses, " in (
        result.stderr
    )
    assert pg.one("select count(*) from sales.events_a", dbname="seq_into") == 1000
    assert insert_event(pg, "seq_into") == 1002
    # a --table backup of the partition holds the sequence its default uses
    one = backup(pg, dest, "--table", "sales.events_a")
    result = restore(pg, dest, one, "--new-db-name", "seq_db")
    assert result.returncode == 0, result.stderr
    assert pg.one("select count(*) from sales.events_a", dbname="seq_db") == 1000
    assert insert_event(pg, "seq_db") == 1001


def test_clean_of_a_partition_attached_on_the_target_is_refused(
    shop: tuple[Cluster, TestDestination],
) -> None:
    """Replacing sales.events_a alone where sales.events holds it: pg_restore's --clean
    cannot drop its inherited key. Refused first, naming the way out."""
    pg, dest = shop
    backup_id = backup(pg, dest)
    assert restore(pg, dest, backup_id, "--new-db-name", "attached").returncode == 0
    flags = ("--table", "sales.events_a", "--into-db", "attached", "--clean")
    result = restore(pg, dest, backup_id, *flags)
    assert result.returncode == 3, result.stderr
    assert (
        "--clean cannot replace partition sales.events_a (of partitioned table sales.events, "
        "which is not restored: restore that table" in result.stderr
    )
    assert result.stderr.count("\n") == 1
    assert_events(pg, "attached")


def forget_partitions(dest: TestDestination, backup_id: str) -> None:
    """The logical.json an older pgvault wrote: no table records its partitioned table."""
    key = LogicalLayout(SERVER).manifest(backup_id)
    with dest.store() as store:
        data = json.loads(store.get_bytes(key))
        for database in data["databases"]:
            for table in database["tables"]:
                table.pop("partition_of", None)
        store.put_bytes(key, json.dumps(data).encode())


def test_a_backup_without_recorded_partitions_takes_them_from_its_toc(
    shop: tuple[Cluster, TestDestination],
) -> None:
    """A table restore of a partitioned table out of such a backup restored its empty
    parent alone (0 rows, exit 0); a --table backup of one partition restored as a database
    failed on the ATTACH PARTITION of a parent it does not hold (exit 1)."""
    pg, dest = shop
    backup_id = backup(pg, dest, "-J", "2")
    forget_partitions(dest, backup_id)
    pg.sql("create database old_json")
    flags = ("--table", "sales.events", "--into-db", "old_json", "-v")
    result = restore(pg, dest, backup_id, *flags)
    assert result.returncode == 0, result.stderr
    assert "does not record partitions (written by an older pgvault)" in result.stderr
    assert_events(pg, "old_json")
    one = backup(pg, dest, "--table", "public.measures_2026")
    forget_partitions(dest, one)
    result = restore(pg, dest, one, "--new-db-name", "old_one")
    assert result.returncode == 0, result.stderr
    assert pg.one("select count(*) from measures_2026", dbname="old_one") == 365
    assert pg.one("select count(*) from pg_inherits", dbname="old_one") == 0


def test_a_table_backup_lacking_a_relation_its_table_names_says_what_to_add(
    shop: tuple[Cluster, TestDestination],
) -> None:
    """pg_dump -t of a table that inherits (INHERITS, not a partition) dumps no parent; a
    --table backup of a partition taken before the sequences its defaults use were added
    lacks its parent's sequence alike. The restore failed with pg_restore's error line
    alone (pg_restore's LINE and caret lines cut the command off); now it names the
    relation missing and what to do."""
    pg, dest = shop
    pg.sql(
        "create table public.base (id int, v text); "
        "create table public.heir (extra int) inherits (public.base); "
        "insert into public.heir values (1, 'a', 2)",
        dbname=SHOP,
    )
    try:
        heir = backup(pg, dest, "--table", "public.heir")
    finally:  # the module's other tests back up the database without them
        pg.sql("drop table public.heir, public.base", dbname=SHOP)
    result = restore(pg, dest, heir, "--new-db-name", "heir_db")
    assert result.returncode == 1, result.stderr
    assert 'relation "public.base" does not exist; Command was: CREATE TABLE public.heir' in (
        result.stderr
    )
    assert "(the backup does not hold public.base: a sequence a column default" in result.stderr
    assert "is dropped; the target is as it was)" in result.stderr
    assert result.stderr.count("\n") == 1
    assert "heir_db" not in {r[0] for r in pg.sql("select datname from pg_database")}
