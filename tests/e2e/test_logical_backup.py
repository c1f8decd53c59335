"""Logical backups end to end: a database backed up while it is written to, restored under a
new name (same and newer major), a table restored into an existing database, the stored
objects restored by pg_restore alone, and the catalog commands."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.logical.layout import LogicalLayout
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.logical import BINDIRS_ENV, SHOP, Writer, make_shop
from tests.support.pg_versions import versioned_cluster
from tests.support.postgres import Cluster, debian_bindir, make_cluster

SERVER = "shop-srv"
WRITTEN = ("sales.events", "sales.events_a", "sales.order_lines", "sales.orders")


@dataclass(frozen=True)
class Taken:
    cluster: Cluster
    dest: TestDestination
    backup_id: str
    writer_commits: int


@pytest.fixture(scope="module")
def taken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Taken]:
    """One PostgreSQL 15 backup of the shop database, taken while a writer commits."""
    from tests.support.destinations import make_destination

    cluster = make_cluster()
    dest = make_destination("file", {})
    try:
        make_shop(cluster)
        writer = Writer(cluster)
        writer.start()
        try:
            result = pgvault(
                "backup", dest.url, SERVER, *cluster.conninfo_args(),
                "--database", SHOP, "-J", "2", "--gzip", "-n", "nightly",
                env=BINDIRS_ENV,
            )  # fmt: skip
        finally:
            writer.stop()
        assert result.returncode == 0, result.stderr
        assert writer.commits > 0
        yield Taken(cluster, dest, result.stdout.strip(), writer.commits)
    finally:
        cluster.drop()
        dest.drop()


def restore(taken: Taken, target: Cluster, *flags: str) -> subprocess.CompletedProcess[str]:
    return pgvault(
        "restore", taken.dest.url, SERVER, taken.backup_id, *target.restore_flags(),
        "--database", SHOP, "-J", "2", *flags,
        env=BINDIRS_ENV,
    )  # fmt: skip


def consistent_snapshot(cluster: Cluster, dbname: str) -> int:
    """Orders in the copy; each with its three lines and one event: one snapshot for all."""
    orders = cluster.one("select count(*) from sales.orders", dbname=dbname)
    assert cluster.one("select count(*) from sales.order_lines", dbname=dbname) == 3 * orders
    assert cluster.one("select count(*) from sales.events", dbname=dbname) - 1000 == orders - 2000
    return int(orders)


def constraints(cluster: Cluster, dbname: str, kind: str) -> int:
    """Constraints of this kind on the user's tables (not the catalogs')."""
    return int(
        cluster.one(
            "select count(*) from pg_constraint c join pg_namespace n on n.oid = c.connamespace "
            "where c.contype = %s and n.nspname not in ('pg_catalog', 'information_schema')",
            (kind,),
            dbname=dbname,
        )
    )


def static(checksums: dict[str, tuple[int, str]]) -> dict[str, tuple[int, str]]:
    return {k: v for k, v in checksums.items() if k not in WRITTEN}


def assert_dependents(cluster: Cluster, source: Cluster, dbname: str) -> None:
    """Sequences continue, views and the large object work, foreign keys came back."""
    top = cluster.one("select max(id) from sales.orders", dbname=dbname)
    new = cluster.one(
        "insert into sales.orders (customer_id) values (2) returning id", dbname=dbname
    )
    assert new > top
    assert (
        cluster.one("insert into sales.customers (name) values ('n') returning id", dbname=dbname)
        > 200
    )
    assert cluster.one("select n from sales.customer_count", dbname=dbname) == 200
    lines = "select count(distinct order_id) from sales.order_lines"
    assert cluster.one("select count(*) from sales.order_totals", dbname=dbname) == cluster.one(
        lines, dbname=dbname
    )
    blob = "select lo_get(blob) from public.docs where id = 1"
    assert bytes(cluster.one(blob, dbname=dbname)) == bytes(source.one(blob, dbname=SHOP))
    assert constraints(cluster, dbname, "f") == constraints(source, SHOP, "f") == 2


def test_database_restored_under_a_new_name_is_one_snapshot(taken: Taken) -> None:
    pg = taken.cluster
    result = restore(taken, pg, "--new-db-name", "shop_copy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "shop_copy"
    orders = consistent_snapshot(pg, "shop_copy")
    assert 2000 < orders <= 2000 + taken.writer_commits
    assert static(pg.table_checksums("shop_copy")) == static(pg.table_checksums(SHOP))
    assert_dependents(pg, pg, "shop_copy")


def test_existing_database_is_refused_naming_it(taken: Taken) -> None:
    result = restore(taken, taken.cluster)
    assert result.returncode == 3
    assert f"database '{SHOP}' already exists" in result.stderr
    assert result.stderr.count("\n") == 1


def test_pg_restore_alone_restores_the_downloaded_objects(taken: Taken, tmp_path: Path) -> None:
    """An operator with the objects and pg_restore, no pgvault."""
    store = taken.dest.store()
    prefix = LogicalLayout(SERVER).dump_prefix(taken.backup_id, SHOP)
    download = tmp_path / "dump"
    download.mkdir()
    with store:
        for obj in store.list_objects(prefix):
            (download / obj.key[len(prefix) :]).write_bytes(store.get_bytes(obj.key))
    pg = taken.cluster
    pg.sql('create database "by_hand"')
    pg_restore = os.path.join(debian_bindir(), "pg_restore")
    subprocess.run(
        [pg_restore, "-h", pg.sock, "-p", str(pg.port), "-U", "postgres", "-d", "by_hand",
         "-j", "2", "--no-owner", "--exit-on-error", str(download)],
        check=True, capture_output=True,
    )  # fmt: skip
    assert restore(taken, pg, "--new-db-name", "by_pgvault").returncode == 0
    assert pg.table_checksums("by_hand") == pg.table_checksums("by_pgvault")
    consistent_snapshot(pg, "by_hand")


def stored_files(taken: Taken) -> dict[Path, tuple[int, int, int, int, bytes]]:
    """Each stored file of the dump: (inode, links, mode, mtime, bytes)."""
    root = Path(taken.dest.url.removeprefix("file://"))
    prefix = LogicalLayout(SERVER).dump_prefix(taken.backup_id, SHOP)
    found = {}
    for path in sorted((root / prefix).iterdir()):
        st = path.stat()
        found[path] = (st.st_ino, st.st_nlink, st.st_mode, st.st_mtime_ns, path.read_bytes())
    return found


def test_a_restore_from_a_local_destination_leaves_the_stored_files_as_they_were(
    taken: Taken,
) -> None:
    """The restore links the stored files into its staging: none is changed, moved or left
    linked, and a stored file written afterwards (in place, as a link would see it) changes
    nothing of the restored database."""
    pg = taken.cluster
    before = stored_files(taken)
    assert len(before) > 2 and all(links == 1 for _, links, *_ in before.values())
    assert restore(taken, pg, "--new-db-name", "shop_linked").returncode == 0
    assert stored_files(taken) == before
    restored = pg.table_checksums("shop_linked")
    assert static(restored) == static(pg.table_checksums(SHOP))
    biggest = max(before, key=lambda p: len(before[p][4]))
    with biggest.open("r+b") as f:  # the same inode, not a new file renamed over it
        f.write(b"\0" * len(before[biggest][4]))
    try:
        assert pg.table_checksums("shop_linked") == restored
    finally:
        biggest.write_bytes(before[biggest][4])
        os.utime(biggest, ns=(before[biggest][3], before[biggest][3]))


def test_one_table_into_an_existing_database(taken: Taken) -> None:
    pg = taken.cluster
    pg.sql("create database other")
    flags = ("--table", "sales.orders", "--into-db", "other", "--no-foreign-keys")
    result = restore(taken, pg, *flags)
    assert result.returncode == 0, result.stderr
    tables = pg.sql("select schemaname || '.' || relname from pg_stat_user_tables", dbname="other")
    assert tables == [("sales.orders",)]
    assert constraints(pg, "other", "p") == 1
    assert constraints(pg, "other", "f") == 0
    assert (
        pg.one(
            "select count(*) from pg_indexes where indexname = 'orders_customer'", dbname="other"
        )
        == 1
    )
    top = pg.one("select max(id) from sales.orders", dbname="other")
    assert (
        pg.one("insert into sales.orders (customer_id) values (1) returning id", dbname="other")
        > top
    )

    again = restore(taken, pg, *flags)
    assert again.returncode == 3 and "sales.orders already exist" in again.stderr
    assert restore(taken, pg, *flags, "--clean").returncode == 0
    assert pg.one("select max(id) from sales.orders", dbname="other") == top

    # its lines keep their foreign key to the orders restored above
    result = restore(taken, pg, "--table", "sales.order_lines", "--into-db", "other")
    assert result.returncode == 0, result.stderr
    assert constraints(pg, "other", "f") == 1


def test_restore_into_postgresql_18(taken: Taken, cluster_factory: Callable[..., Cluster]) -> None:
    pg18 = versioned_cluster(18)
    try:
        result = restore(taken, pg18, "--new-db-name", "shop18", "-v")
        assert result.returncode == 0, result.stderr
        assert "pg_restore (PostgreSQL) 18" in result.stderr
        assert static(pg18.table_checksums("shop18")) == static(taken.cluster.table_checksums(SHOP))
        consistent_snapshot(pg18, "shop18")
        assert_dependents(pg18, taken.cluster, "shop18")
    finally:
        pg18.drop()


def test_catalog_lists_and_shows_the_logical_backup(taken: Taken) -> None:
    listed = pgvault("backup-list", taken.dest.url, SERVER)
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if x.startswith(taken.backup_id))
    assert "logical" in line and SHOP in line and "nightly" in line
    data = json.loads(pgvault("backup-list", taken.dest.url, SERVER, "--format", "json").stdout)
    assert data["backups_list"] == []
    (entry,) = data["logical_backups"]
    assert entry["kind"] == "logical" and entry["databases"] == [SHOP]
    assert entry["status"] == "DONE" and entry["stored_size"] > 0

    shown = pgvault("backup-show", taken.dest.url, SERVER, taken.backup_id)
    assert shown.returncode == 0, shown.stderr
    assert "größe" in shown.stdout and "order_lines" in shown.stdout
    data = json.loads(
        pgvault("backup-show", taken.dest.url, SERVER, taken.backup_id, "--format", "json").stdout
    )
    (db,) = data["databases"]
    sizes = {f"{t['schema']}.{t['name']}": t for t in db["tables"]}
    assert sizes["sales.customers"]["rows_estimate"] == 200
    assert sizes["sales.orders"]["size"] > 0
    assert "toc.dat" in {f["name"] for f in db["files"]}


def test_clean_replaces_what_an_existing_database_holds(taken: Taken) -> None:
    pg = taken.cluster
    assert restore(taken, pg, "--new-db-name", "again").returncode == 0
    expected = pg.table_checksums("again")
    pg.sql("delete from sales.order_lines; create table extra (i int)", dbname="again")
    held = pg.connect("again")  # a session on the database being replaced is ended
    try:
        result = restore(taken, pg, "--new-db-name", "again", "--clean")
    finally:
        held.close()
    assert result.returncode == 0, result.stderr
    assert pg.table_checksums("again") == expected  # "extra" is gone too
    databases = {r[0] for r in pg.sql("select datname from pg_database")}
    assert not [d for d in databases if d.startswith("pgvault_restore_")]
