"""Sample clusters for backup tests: data in PGDATA and in two tablespaces, WAL archived by cp."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tests.support.postgres import Cluster, add_tablespace, make_cluster, world_dir


def archived_cluster(
    bindir: str | None = None,
    settings: Mapping[str, object] | None = None,
    initdb_args: Sequence[str] = (),
) -> tuple[Cluster, str]:
    """A running cluster whose archive_command copies WAL into a directory postgres owns."""
    archive = world_dir("pgvault-wal-")
    cluster = make_cluster(
        bindir=bindir,
        archive_command=f"test ! -f {archive}/%f && cp %p {archive}/%f",
        settings=settings,
        initdb_args=initdb_args,
    )
    return cluster, archive


def populate(cluster: Cluster, rows: int = 20_000) -> None:
    """Tables in PGDATA, in tablespace ts1, a database living in ts2, TOAST, an index,
    an unlogged table and a materialized view."""
    add_tablespace(cluster, "ts1")
    add_tablespace(cluster, "ts2")
    cluster.sql("create table accounts(id int primary key, owner text, balance numeric, note text)")
    cluster.sql(
        "insert into accounts select g, 'owner ' || g, g * 1.5, repeat(md5(g::text), 3) "
        f"from generate_series(1, {rows}) g"
    )
    cluster.sql("create table blobs(id int, payload bytea) tablespace ts1")
    cluster.sql(
        "insert into blobs select g, decode(repeat(md5(g::text), 200), 'hex') "
        "from generate_series(1, 200) g"
    )
    cluster.sql("create index blobs_id on blobs(id) tablespace ts1")
    cluster.sql("create unlogged table scratch(id int)")
    cluster.sql("insert into scratch select generate_series(1, 1000)")
    cluster.sql("create materialized view rich as select * from accounts where balance > 100")
    cluster.sql("create database sales tablespace ts2")
    cluster.sql("create table orders(id int, amount int, at timestamptz)", dbname="sales")
    cluster.sql(
        "insert into orders select g, g % 97, now() from generate_series(1, 5000) g",
        dbname="sales",
    )
    cluster.sql("checkpoint")


UNLOGGED = "public.scratch"  # a backup carries only its init fork: empty after restore


def checksums(cluster: Cluster) -> dict[str, dict[str, tuple[int, str]]]:
    """Every logged table's row count and md5, per database the sample creates."""
    result = {db: cluster.table_checksums(db) for db in ("postgres", "sales")}
    result["postgres"].pop(UNLOGGED, None)
    return result
