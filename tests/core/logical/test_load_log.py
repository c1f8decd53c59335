"""pg_restore --verbose read for the tables it has loaded, on the lines PostgreSQL 15's and
18's pg_restore wrote restoring one dump (`we ird` and `T b` have spaces in their names)."""

from __future__ import annotations

from core.logical.load_log import LoadLog, table_data_ids
from core.logical.manifest import TableEntry

LISTING = """;
; Archive created at 2026-12-07 17:05:11 UTC
3354; 0 16385 TABLE DATA public a postgres
3357; 0 16398 TABLE DATA public c postgres
3356; 0 16395 TABLE DATA public empty postgres
3355; 0 16390 TABLE DATA we ird T b postgres
3210; 2606 16389 CONSTRAINT public a a_pkey postgres
"""
TABLES = tuple(
    TableEntry(schema, name, None, 0)
    for schema, name in (("public", "a"), ("public", "c"), ("public", "empty"), ("we ird", "T b"))
)
#: pg_restore 18 -j 1 -v (15 writes the same without the set_config line)
SERIAL = """pg_restore: connecting to database for restore
pg_restore: executing SELECT pg_catalog.set_config('search_path', '', false);
pg_restore: creating SCHEMA "we ird"
pg_restore: creating TABLE "public.a"
pg_restore: creating TABLE "public.c"
pg_restore: creating TABLE "public.empty"
pg_restore: creating TABLE "we ird.T b"
pg_restore: processing data for table "public.a"
pg_restore: processing data for table "public.c"
pg_restore: processing data for table "public.empty"
pg_restore: processing data for table "we ird.T b"
pg_restore: creating CONSTRAINT "public.a a_pkey"
pg_restore: creating INDEX "public.c_i_idx"
"""
#: pg_restore 15 -j 2 -v
PARALLEL = """pg_restore: launching item 3354 TABLE DATA a
pg_restore: launching item 3355 TABLE DATA T b
pg_restore: processing data for table "public.a"
pg_restore: processing data for table "we ird.T b"
pg_restore: finished item 3355 TABLE DATA T b
pg_restore: launching item 3357 TABLE DATA c
pg_restore: processing data for table "public.c"
pg_restore: finished item 3354 TABLE DATA a
pg_restore: finished item 3357 TABLE DATA c
pg_restore: finished item 3210 CONSTRAINT a a_pkey
"""


def _read(serial: bool, text: str) -> list[tuple[str, int | None]]:
    """(line just read, dump ID loaded) for each table loaded; "end" for pg_restore's exit."""
    seen: list[tuple[str, int | None]] = []
    current = ""
    log = LoadLog(serial, table_data_ids(LISTING, TABLES), lambda i: seen.append((current, i)))
    for line in text.splitlines():
        current = line
        log.line(line + "\n")
    current = "end"
    log.ended()
    return seen


def test_the_listing_gives_each_table_its_dump_id_by_the_name_pg_restore_logs() -> None:
    assert table_data_ids(LISTING, TABLES) == {
        "public.a": 3354,
        "public.c": 3357,
        "public.empty": 3356,
        "we ird.T b": 3355,
    }


def test_a_serial_restore_loaded_a_table_when_the_next_item_starts() -> None:
    assert _read(True, SERIAL) == [
        ('pg_restore: processing data for table "public.c"', 3354),
        ('pg_restore: processing data for table "public.empty"', 3357),
        ('pg_restore: processing data for table "we ird.T b"', 3356),
        ('pg_restore: creating CONSTRAINT "public.a a_pkey"', 3355),
    ]


def test_a_serial_restore_s_last_table_is_loaded_when_pg_restore_ends() -> None:
    head = "".join(SERIAL.splitlines(keepends=True)[:8])  # only public.a's data started
    assert _read(True, head) == [("end", 3354)]


def test_a_parallel_restore_counts_its_finished_items_only() -> None:
    assert _read(False, PARALLEL) == [
        ("pg_restore: finished item 3355 TABLE DATA T b", 3355),
        ("pg_restore: finished item 3354 TABLE DATA a", 3354),
        ("pg_restore: finished item 3357 TABLE DATA c", 3357),
    ]
