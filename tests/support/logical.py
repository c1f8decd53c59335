"""A database for logical backup tests: schemas, sequences, foreign keys, views, a large
object, non-ASCII names, a partitioned table; and a writer that commits while a backup runs."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.destinations import TestDestination
from tests.support.emulators import REPO
from tests.support.postgres import Cluster

SHOP = "shöp"  # non-ASCII database name
TOOLS = os.path.join(str(REPO), ".tools", "postgres")
#: where the tests' pgvault finds pg_dump/pg_restore of 17 and 18 (15 is Debian's)
BINDIRS_ENV = {
    "PGVAULT_PG_BINDIRS": ":".join(os.path.join(TOOLS, d, "bin") for d in ("18", "17-client"))
}

SCHEMA_SQL = """
create schema sales;
create schema "Lager Ü";
create table sales.customers (id serial primary key, name text not null unique);
create table sales.orders (
    id bigint generated always as identity primary key,
    customer_id int not null references sales.customers(id),
    placed timestamptz not null default now(),
    note text);
create index orders_customer on sales.orders (customer_id);
create table sales.order_lines (
    order_id bigint not null references sales.orders(id),
    line int not null, qty int not null check (qty > 0),
    primary key (order_id, line));
create table "Lager Ü"."größe" (sku text primary key, "Menge" numeric(12,2), data bytea);
create table sales.events (id bigserial primary key, at timestamptz default now(), payload text)
    partition by range (id);
create table sales.events_a partition of sales.events for values from (1) to (1000000);
create table public.docs (id int primary key, blob oid);
create view sales.order_totals as
    select o.id, o.customer_id, sum(l.qty) as qty
    from sales.orders o join sales.order_lines l on l.order_id = o.id group by o.id;
insert into sales.customers (name) select 'customer ' || g from generate_series(1, 200) g;
insert into sales.orders (customer_id, note)
    select 1 + g % 200, repeat('note ', g % 7) from generate_series(1, 2000) g;
insert into sales.order_lines select o.id, l, 1 + (o.id + l) % 5
    from sales.orders o, generate_series(1, 3) l;
insert into "Lager Ü"."größe"
    select 'sku-' || g, g * 1.25, decode(md5(g::text), 'hex') from generate_series(1, 500) g;
insert into sales.events (payload) select md5(g::text) from generate_series(1, 1000) g;
insert into public.docs
    values (1, lo_from_bytea(0, convert_to('große Datei ' || repeat('x', 5000), 'UTF8')));
create materialized view sales.customer_count as select count(*) as n from sales.customers;
analyze;
"""


def make_shop(cluster: Cluster, name: str = SHOP) -> None:
    cluster.sql(f'create database "{name}"')
    cluster.sql(SCHEMA_SQL, dbname=name)


@dataclass
class Writer:
    """Commits an order with its three lines per transaction until stopped."""

    cluster: Cluster
    database: str = SHOP
    commits: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = self.cluster.connect(self.database)
        conn.autocommit = False
        try:
            while not self._stop.is_set():
                with conn.cursor() as cur:
                    cur.execute("insert into sales.orders (customer_id) values (1) returning id")
                    (order_id,) = cur.fetchone()  # type: ignore[misc]
                    cur.execute(
                        "insert into sales.order_lines "
                        "select %s, l, 1 from generate_series(1, 3) l",
                        (order_id,),
                    )
                    cur.execute("insert into sales.events (payload) values ('live')")
                conn.commit()
                self.commits += 1
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def pg_dumps(staging: Path, tool: str = "pg_dump") -> list[tuple[int, str]]:
    """(pid, state) of the pg_dump (or `tool`) processes working in `staging`."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (OSError, ValueError):
            continue
        if tool.encode() in cmdline and str(staging).encode() in cmdline:
            found.append((int(entry), stat.rpartition(")")[2].split()[0]))
    return found


def dump_files(dest: TestDestination, server: str) -> list[str]:
    """The dump files stored under the server's logical/ (not the lease, not logical.json)."""
    with dest.store() as store:
        return [o.key for o in store.list_objects(f"{server}/logical/") if "/db/" in o.key]


def wait_for_upload_while_dumping(dest: TestDestination, staging: Path, server: str) -> None:
    """Dump files stored while pg_dump is still there (stopped: staging is full)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if dump_files(dest, server) and pg_dumps(staging):
            return
        time.sleep(0.1)
    raise AssertionError("no upload seen while pg_dump ran")


def make_big(shop: Cluster) -> None:
    """A table pg_dump spends a few seconds on (it goes first, the largest): small files
    close meanwhile, and a staging limit of one byte stops pg_dump before it is done."""
    shop.sql(
        "create table public.big as select g, md5(g::text) || repeat('z', 300) as t "
        "from generate_series(1, 100000) g",
        dbname=SHOP,
    )
