"""The pure parts of incrementals: relation file names, page LSNs, block runs, WAL summary
rows, the per-file decision, and the chain restore's block assembly (newest wins)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from core.backup.blocks import (
    DEFAULT_TABLESPACE,
    GLOBAL_TABLESPACE,
    RELSEG_BLOCKS,
    changed_pages,
    from_runs,
    page_lsn,
    relation_file,
    to_runs,
)
from core.backup.increment import FileState
from core.backup.increment_plan import SAME, SCAN, WHOLE, _decide
from core.backup.summaries import SummaryMap, _coverage_gap
from core.catalog.manifest import CRC32C, checksum_of
from core.postgres.pgdata import Entry
from core.restore.chain import BlockSink, Need, Needs, finish_needs, settle_need
from core.restore.crc_join import Crc32cJoin

BS = 8192


def page(lsn: int, fill: int = 1) -> bytes:
    return struct.pack("=II", lsn >> 32, lsn & 0xFFFFFFFF) + bytes([fill]) * (BS - 8)


def entry(path: str, size: int, mtime: float = 1.0) -> Entry:
    return Entry(path, False, size, 0o600, 0, 0, mtime)


def test_relation_files_are_recognised_where_postgres_keeps_them() -> None:
    rel = relation_file("base/5/16384.2")
    assert rel is not None
    assert (rel.tablespace, rel.database, rel.relfilenode, rel.fork, rel.segment) == (
        DEFAULT_TABLESPACE,
        5,
        16384,
        0,
        2,
    )
    assert rel.first_block == 2 * RELSEG_BLOCKS
    assert relation_file("global/1262_vm") == relation_file("global/1262_vm")
    found = relation_file("global/1262_vm")
    assert found is not None and (found.tablespace, found.fork) == (GLOBAL_TABLESPACE, 2)
    spc = relation_file("pg_tblspc/16400/PG_15_202209061/16384/16401_fsm")
    assert spc is not None and (spc.tablespace, spc.database, spc.fork) == (16400, 16384, 1)
    for other in (
        "base/5/PG_VERSION",
        "pg_xact/0000",
        "base/5/pg_filenode.map",
        "global/pg_control",
    ):
        assert relation_file(other) is None


def test_pages_at_or_after_the_parent_start_and_lsn_zero_pages_are_chosen() -> None:
    since = 0x1_0000_0000
    data = page(since - 1) + page(since) + page(0, 0) + page(since + 5)
    assert page_lsn(page(0x2_0000_0010)) == 0x2_0000_0010
    assert changed_pages(data, 10, since, BS) == [11, 12, 13]


def test_block_runs_round_trip() -> None:
    blocks = [0, 1, 2, 5, 7, 8]
    runs = to_runs(blocks)
    assert runs == [[0, 3], [5, 1], [7, 2]]
    assert list(from_runs(runs)) == blocks


def test_summary_rows_give_blocks_limits_and_new_databases() -> None:
    summary = SummaryMap()
    for row in [
        (16384, 1663, 5, 0, 3, False),
        (16384, 1663, 5, 0, 9, False),
        (16384, 1663, 5, 0, 4, True),
        (16384, 1663, 5, 0, 2, True),
        (0, 1663, 16500, 0, 0, True),
    ]:
        summary.add(row)
    changes = summary.forks[(1663, 5, 16384, 0)]
    assert changes.blocks == {3, 9}
    assert changes.limit == 2
    assert summary.new_databases == {(1663, 16500)}


def test_summaries_must_cover_the_range_without_a_gap() -> None:
    rows = [(1, "0/100", "0/200"), (1, "0/200", "0/300")]
    assert _coverage_gap(rows, 0x150, 0x280) == ""
    assert "do not cover" in _coverage_gap(rows, 0x50, 0x280)
    assert "do not cover" in _coverage_gap(
        [(1, "0/100", "0/180"), (1, "0/200", "0/300")], 0x100, 0x250
    )


def test_summaries_are_ordered_by_lsn_not_as_text() -> None:
    """As pg_available_wal_summaries() rows read as text: 0/10000028 sorts before 0/6000028."""
    rows: list[tuple[object, ...]] = [
        (1, "0/10000028", "0/10003668"),
        (1, "0/10003668", "0/11000028"),
        (1, "0/6000028", "0/FDDF170"),
        (1, "0/FDDF170", "0/10000028"),
    ]
    assert _coverage_gap(rows, 0x6000028, 0x11000028) == ""
    assert "do not cover" in _coverage_gap(rows[1:], 0x6000028, 0x11000028)


def test_each_file_is_stored_whole_as_blocks_or_not_at_all() -> None:
    old = FileState(4 * BS, 1.0)
    # new files and changed non-relation files whole, unchanged ones not at all
    assert _decide("base/5/16384", entry("", 4 * BS), None, None, BS) == WHOLE
    assert _decide("base/5/PG_VERSION", entry("", 3, 1.0), FileState(3, 1.0), None, BS) == SAME
    assert _decide("pg_xact/0000", entry("", 3, 2.0), FileState(3, 1.0), None, BS) == WHOLE
    # page-LSN: main forks read page by page, FSM and VM whole
    assert _decide("base/5/16384", entry("", 4 * BS), old, None, BS) == SCAN
    assert _decide("base/5/16384_vm", entry("", 4 * BS), old, None, BS) == WHOLE
    assert _decide("base/5/16384_fsm", entry("", 4 * BS), old, None, BS) == WHOLE
    # summaries: only the blocks named; truncation to a limit re-reads what is past it
    summary = SummaryMap()
    summary.add((16384, 1663, 5, 0, 1, False))
    assert _decide("base/5/16384", entry("", 4 * BS), old, summary, BS) == [1]
    assert _decide("base/5/16385", entry("", 4 * BS), old, summary, BS) == SAME
    summary.add((16384, 1663, 5, 0, 2, True))
    assert _decide("base/5/16384", entry("", 4 * BS), old, summary, BS) == [1, 2, 3]
    summary.add((0, 1663, 5, 0, 0, True))
    assert _decide("base/5/16384", entry("", 4 * BS), old, summary, BS) == WHOLE


def test_blocks_are_assembled_newest_first_each_written_once(tmp_path: Path) -> None:
    target = str(tmp_path / "rel")
    needs = Needs(BS)
    needs.files["base/5/1"] = Need(target, 4 * BS, 5.0, set(range(4)))
    # the newest link stored blocks 1 and 3
    newest = BlockSink(needs, "base/5/1", [1, 3], None)
    newest.data(memoryview(b"N" * BS + b"M" * BS))
    newest.end()
    # an older link stored the whole file: only blocks 0 and 2 are still wanted
    older = BlockSink(needs, "base/5/1", None, None)
    whole = b"".join(bytes([c]) * BS for c in b"abcd")
    older.data(memoryview(whole[:5000]))  # chunks not aligned on blocks
    older.data(memoryview(whole[5000:]))
    older.end()
    assert finish_needs(needs, None) == []
    with open(target, "rb") as fh:
        restored = fh.read()
    assert restored == b"a" * BS + b"N" * BS + b"c" * BS + b"M" * BS
    assert os.stat(target).st_mtime == 5.0


def test_blocks_no_link_holds_are_zero_and_said(tmp_path: Path) -> None:
    needs = Needs(BS)
    needs.files["base/5/2"] = Need(str(tmp_path / "two"), 2 * BS, 1.0, {0, 1})
    warnings = finish_needs(needs, None)
    assert warnings and "2 blocks" in warnings[0]
    assert os.path.getsize(tmp_path / "two") == 2 * BS


def test_consecutive_blocks_are_written_as_one_run_and_checksummed_as_written(
    tmp_path: Path,
) -> None:
    target = str(tmp_path / "rel")
    needs = Needs(BS, checksums=True)
    needs.files["base/5/1"] = Need(target, 6 * BS, 5.0, set(range(6)))
    newest = BlockSink(needs, "base/5/1", [1, 2, 4], None, "new")
    newest.data(memoryview(b"N" * BS + b"O" * BS + b"P" * BS))
    newest.end()
    older = BlockSink(needs, "base/5/1", None, None, "old")
    whole = b"".join(bytes([c]) * BS for c in b"abcd")  # four blocks; block 5 is in no link
    older.data(memoryview(whole[: 3 * BS + 100]))  # block 3 cut where a chunk ends
    older.data(memoryview(whole[3 * BS + 100 :]))
    older.end()
    need = needs.files["base/5/1"]
    # blocks 1 and 2 in one write; 4 after a gap; 0 and 3 from the older link
    assert sorted((first, count) for first, count, _n, _c in need.pieces) == [
        (0, 1),
        (1, 2),
        (3, 1),
        (4, 1),
    ]
    assert needs.written == {"new": [3, 3 * BS], "old": [2, 2 * BS]}
    assert finish_needs(needs, None) == ["base/5/1: 1 blocks held by no link, zeroed"]
    with open(target, "rb") as fh:
        restored = fh.read()
    assert restored == b"a" * BS + b"N" * BS + b"O" * BS + b"d" * BS + b"P" * BS + bytes(BS)
    assert need.checksum(Crc32cJoin(BS)) == checksum_of(CRC32C, restored)


def test_a_short_last_block_is_checksummed_and_a_run_of_the_wrong_length_is_not(
    tmp_path: Path,
) -> None:
    size = 2 * BS + 300  # a non-relation file: its last block is short
    content = bytes(range(256)) * (size // 256) + bytes(size % 256)
    needs = Needs(BS, checksums=True)
    needs.files["pg_xact/0000"] = Need(str(tmp_path / "xact"), size, 1.0, set(range(3)))
    sink = BlockSink(needs, "pg_xact/0000", None, None, "full")
    sink.data(memoryview(content))
    sink.end()
    assert finish_needs(needs, None) == []
    need = needs.files["pg_xact/0000"]
    assert need.checksum(Crc32cJoin(BS)) == checksum_of(CRC32C, content)
    # an older copy one byte longer than the file as restored: read back, not trusted
    longer = Needs(BS, checksums=True)
    longer.files["pg_xact/0000"] = Need(str(tmp_path / "other"), size, 1.0, set(range(3)))
    sink = BlockSink(longer, "pg_xact/0000", None, None, "full")
    sink.data(memoryview(content + b"x"))
    sink.end()
    assert longer.files["pg_xact/0000"].checksum(Crc32cJoin(BS)) is None


def test_a_file_is_settled_as_soon_as_its_last_block_is_written(tmp_path: Path) -> None:
    settled: list[str] = []

    def settle(need: Need) -> bool:
        settle_need(need, None)
        settled.append(need.path)
        return True

    needs = Needs(BS)
    needs.on_complete = settle
    target = str(tmp_path / "rel")
    needs.files["base/5/1"] = Need(target, 3 * BS, 7.0, set(range(3)))
    newest = BlockSink(needs, "base/5/1", [2], None, "new")
    newest.data(memoryview(b"N" * BS))
    newest.end()
    assert settled == []  # blocks 0 and 1 still missing
    older = BlockSink(needs, "base/5/1", None, None, "old")
    older.data(memoryview(b"a" * BS + b"b" * BS + b"c" * BS))
    older.end()
    # settled before the end of the restore: dated as in the backup, ready to be fsynced
    assert settled == [target]
    assert os.stat(target).st_mtime == 7.0
    assert finish_needs(needs, None) == []
    assert settled == [target]


def test_a_file_that_cannot_be_settled_yet_is_left_to_the_end(tmp_path: Path) -> None:
    needs = Needs(BS)
    needs.on_complete = lambda need: False  # e.g. the data directory's owner is not known
    target = str(tmp_path / "rel")
    needs.files["base/5/1"] = Need(target, BS, 7.0, {0})
    sink = BlockSink(needs, "base/5/1", None, None, "full")
    sink.data(memoryview(b"a" * BS))
    sink.end()
    assert not needs.files["base/5/1"].settled
    assert finish_needs(needs, None) == []
    assert needs.files["base/5/1"].settled
    assert os.stat(target).st_mtime == 7.0
