"""psql's table patterns, and the TOC entries a table restore keeps (from a real listing)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from core.errors import InputError
from core.logical.inventory import Relation, pattern_parts, select_tables
from core.logical.manifest import DumpFile, TableEntry
from core.logical.selection import ABSENT_PARENT, data_files, select_entries, toc_partitions

ORDERS = TableEntry(
    "sales", "orders", 2000, 8192, ("orders_customer", "orders_pkey"), (("sales", "orders_id_seq"),)
)
LINES = TableEntry("sales", "order_lines", 6000, 8192, ("order_lines_pkey",))

# `pg_restore -l` of the shop database (PostgreSQL 15), trimmed
LISTING = """;
; Archive created at 2026-12-03 17:55:10 UTC
;
7; 2615 16385 SCHEMA - sales postgres
215; 1259 16399 TABLE sales orders postgres
214; 1259 16398 SEQUENCE sales orders_id_seq postgres
213; 1259 16390 TABLE sales customers postgres
216; 1259 16410 TABLE sales order_lines postgres
220; 1259 16450 VIEW sales order_totals postgres
3380; 0 16399 TABLE DATA sales orders postgres
3381; 0 16410 TABLE DATA sales order_lines postgres
3379; 0 16390 TABLE DATA sales customers postgres
3390; 0 0 SEQUENCE SET sales orders_id_seq postgres
3221; 2606 16404 CONSTRAINT sales orders orders_pkey postgres
3224; 2606 16415 CONSTRAINT sales order_lines order_lines_pkey postgres
3222; 1259 16416 INDEX sales orders_customer postgres
3225; 2606 16417 FK CONSTRAINT sales orders orders_customer_id_fkey postgres
3226; 2606 16418 FK CONSTRAINT sales order_lines order_lines_order_id_fkey postgres
3400; 0 0 COMMENT sales TABLE orders postgres
"""


def kept(listing: str) -> list[str]:
    return [line for line in listing.splitlines() if line and not line.startswith(";")]


def test_a_table_keeps_its_own_entries_and_foreign_keys_unless_told() -> None:
    selection = select_entries(LISTING, [ORDERS])
    assert [line.split(" ", 1)[0] for line in kept(selection.listing)] == [
        "215;", "214;", "3380;", "3390;", "3221;", "3222;", "3225;",
    ]  # fmt: skip
    assert selection.data_ids == (3380,)
    without = select_entries(LISTING, [ORDERS], foreign_keys=False)
    assert "3225;" not in {line.split(" ", 1)[0] for line in kept(without.listing)}
    # every line is still there, commented out, so that pg_restore -L reads it
    assert len(selection.listing.splitlines()) == len(LISTING.splitlines())


def test_a_table_whose_name_prefixes_another_does_not_take_its_entries() -> None:
    selection = select_entries(LISTING, [LINES])
    ids = {line.split(" ", 1)[0] for line in kept(selection.listing)}
    assert ids == {"216;", "3381;", "3224;", "3226;"}
    files = [DumpFile("3380.dat.gz", 1), DumpFile("3381.dat.gz", 2), DumpFile("toc.dat", 3)]
    assert data_files(files, selection.data_ids) == [DumpFile("3381.dat.gz", 2)]


@pytest.mark.parametrize(
    "pattern, schema, name, matches",
    [
        ("sales.orders", "sales", "orders", True),
        ("SALES.Orders", "sales", "orders", True),  # unquoted: folded to lower case
        ('"Lager Ü"."größe"', "Lager Ü", "größe", True),
        ('"Sales".orders', "sales", "orders", False),  # quoted: case kept
        ("sales.order*", "sales", "order_lines", True),
        ("sales.order?", "sales", "orders", True),
        ("sales.order?", "sales", "order_lines", False),
        ("db.sales.orders", "sales", "orders", True),
        ("s$.x", "s$", "x", True),
    ],
)
def test_patterns_follow_psql(pattern: str, schema: str, name: str, matches: bool) -> None:
    schema_re, name_re = pattern_parts(pattern)
    assert schema_re is not None
    found = re.fullmatch(schema_re, schema) and re.fullmatch(name_re, name)
    assert bool(found) is matches


def test_a_pattern_matching_nothing_is_bad_input() -> None:
    found = [
        Relation(ORDERS, "r", visible=False),
        Relation(TableEntry("sales", "order_totals", None, 0), "v", visible=False),
    ]
    assert select_tables(found, ("sales.order*",), "shop") == (ORDERS,)
    assert select_tables(found, (), "shop") == (ORDERS,)
    with pytest.raises(InputError, match="no table matches 'orders'"):
        select_tables(found, ("orders",), "shop")  # not on the search path
    with pytest.raises(InputError, match=r"no table matches 'public\.orders'"):
        select_tables(found, ("sales.orders", "public.orders"), "shop")


# `pg_restore -l -v` of a partitioned table with a serial key (PostgreSQL 15 and 18 alike):
# the partition's TABLE depends on its parent's sequence, its ATTACH on both tables
VERBOSE = """;
223; 1259 16432 TABLE sales events postgres
;\tdepends on: 6
222; 1259 16431 SEQUENCE sales events_id_seq postgres
;\tdepends on: 223 6
3424; 0 0 SEQUENCE OWNED BY sales events_id_seq postgres
;\tdepends on: 222
224; 1259 16439 TABLE sales events_a postgres
;\tdepends on: 222 223 6
3233; 0 0 TABLE ATTACH sales events_a postgres
;\tdepends on: 224 223
3412; 0 16439 TABLE DATA sales events_a postgres
;\tdepends on: 224
3426; 0 0 SEQUENCE SET sales events_id_seq postgres
;\tdepends on: 222
"""
EVENTS = TableEntry("sales", "events", 0, 0, ("events_pkey",), (("sales", "events_id_seq"),))
EVENTS_A = TableEntry("sales", "events_a", 1000, 8192, ("events_a_pkey",))


def test_a_partition_alone_borrows_its_parents_sequence_without_owned_by() -> None:
    selection = select_entries(VERBOSE, [EVENTS_A])
    ids = [line.split(" ", 1)[0] for line in kept(selection.listing)]
    assert ids == ["222;", "224;", "3412;", "3426;"]  # not 3424 (OWNED BY), not 3233 (ATTACH)
    assert selection.borrowed == ("sales events_id_seq",)
    kept_out = select_entries(VERBOSE, [EVENTS_A], keep_out=["sales events_id_seq"])
    assert [line.split(" ", 1)[0] for line in kept(kept_out.listing)] == ["224;", "3412;"]
    assert kept_out.borrowed == ()
    # with its parent, the sequence is the parent's own: nothing borrowed
    both = select_entries(VERBOSE, [EVENTS, replace(EVENTS_A, partition_of=("sales", "events"))])
    assert both.borrowed == () and "3424;" in {x.split(" ", 1)[0] for x in kept(both.listing)}


def test_partitions_come_from_the_toc_when_the_manifest_lacks_them() -> None:
    derived = toc_partitions(VERBOSE, (EVENTS, EVENTS_A))
    assert derived is not None
    assert [t.partition_of for t in derived] == [None, ("sales", "events")]
    # a --table backup of the partition alone: its ATTACH depends on no table it holds
    alone = VERBOSE.replace(";\tdepends on: 224 223", ";\tdepends on: 224")
    assert toc_partitions(alone, (EVENTS_A,)) == (replace(EVENTS_A, partition_of=ABSENT_PARENT),)
    # recorded already, or no partition: nothing derived
    assert toc_partitions(VERBOSE, derived) is None
    assert toc_partitions(LISTING, (ORDERS, LINES)) is None
