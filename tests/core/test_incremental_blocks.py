"""The pure parts of incrementals: relation file names, page LSNs, block runs, WAL summary
rows, the per-file decision, and the chain restore's block assembly (newest wins)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

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
from core.catalog.backup_info import BackupInfo
from core.catalog.manifest import CRC32C, FileRecord, PgvaultManifest, checksum_of
from core.errors import IntegrityError
from core.postgres.pgdata import Entry
from core.restore.chain import BlockSink, ChainLink, Need, Needs, finish_needs, settle_need
from core.restore.crc_join import Crc32cJoin
from core.restore.extract import Destination

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


def need(path: str, blocks: int, base: tuple[int, int] | None, changed: dict[int, int]) -> Need:
    """A file of `blocks` blocks; `base`: (link, blocks of its whole copy); links newest first."""
    whole = (base[0], base[1] * BS) if base else None
    return Need.plan(path, blocks * BS, 5.0, BS, whole, changed)


def feed(needs: Needs, path: str, numbers: list[int] | None, data: bytes, link: int) -> None:
    """One link's member, in chunks that are not aligned on blocks."""
    sink = BlockSink(needs, path, numbers, None, link)
    for at in range(0, len(data), 5000):
        sink.data(memoryview(data[at : at + 5000]))
    sink.end()


def blocks_of(letters: bytes) -> bytes:
    return b"".join(bytes([c]) * BS for c in letters)


def test_blocks_are_assembled_newest_first_each_written_once(tmp_path: Path) -> None:
    target = str(tmp_path / "rel")
    needs = Needs(BS)
    # the newest link (0) stored blocks 1 and 3, an older one (1) the whole file
    needs.files["base/5/1"] = need(target, 4, (1, 4), {1: 0, 3: 0})
    feed(needs, "base/5/1", [1, 3], b"N" * BS + b"M" * BS, 0)
    feed(needs, "base/5/1", None, blocks_of(b"abcd"), 1)
    assert finish_needs(needs, None) == []
    with open(target, "rb") as fh:
        restored = fh.read()
    assert restored == b"a" * BS + b"N" * BS + b"c" * BS + b"M" * BS
    assert os.stat(target).st_mtime == 5.0
    assert needs.written == {0: [2, 2 * BS], 1: [2, 2 * BS]}


def test_links_fetched_in_any_order_give_the_same_file(tmp_path: Path) -> None:
    # link 0 changed block 1; link 1 blocks 1 and 2; link 2 holds the file whole
    order = [(2, None, blocks_of(b"abcd")), (1, [1, 2], b"X" * BS + b"Y" * BS), (0, [1], b"Z" * BS)]
    results = set()
    for turn in range(3):
        target = str(tmp_path / f"rel{turn}")
        needs = Needs(BS)
        needs.files["base/5/1"] = need(target, 4, (2, 4), {1: 0, 2: 1})
        for link, numbers, data in order[turn:] + order[:turn]:
            feed(needs, "base/5/1", numbers, data, link)
        assert finish_needs(needs, None) == []
        with open(target, "rb") as fh:
            results.add(fh.read())
    assert results == {b"a" * BS + b"Z" * BS + b"Y" * BS + b"d" * BS}


def test_blocks_no_link_holds_are_zero_and_said(tmp_path: Path) -> None:
    needs = Needs(BS)
    needs.files["base/5/2"] = need(str(tmp_path / "two"), 2, None, {})
    warnings = finish_needs(needs, None)
    assert warnings and "2 blocks" in warnings[0]
    assert os.path.getsize(tmp_path / "two") == 2 * BS


def test_blocks_a_manifest_promised_and_no_archive_gave_fail_the_restore(tmp_path: Path) -> None:
    needs = Needs(BS)
    needs.files["base/5/1"] = need(str(tmp_path / "rel"), 3, (1, 3), {2: 0})
    feed(needs, "base/5/1", [2], b"N" * BS, 0)  # the whole copy never came
    with pytest.raises(IntegrityError, match="2 of its blocks recorded"):
        finish_needs(needs, None)


def chain_link(
    backup_id: str, whole: dict[str, int], blocks: dict[str, list[list[int]]] | None
) -> ChainLink:
    """A backup holding `whole` files (path: bytes) and, for an incremental, `blocks`."""
    records = tuple(FileRecord(path, size, 1.0, "", "data.tar", 0) for path, size in whole.items())
    incremental = None
    if blocks is not None:
        files = [[path, 4 * BS, 5.0, runs] for path, runs in blocks.items()]
        incremental = {"kind": "incremental", "block_size": BS, "files": files}
    manifest = PgvaultManifest(
        backup_id, "pg", "done", "0", "", files=records, incremental=incremental
    )
    return ChainLink(BackupInfo(backup_id), manifest, ())


def test_a_whole_copy_ends_the_search_for_older_blocks(tmp_path: Path) -> None:
    where = {"data": Destination("data", str(tmp_path), "")}
    oldest = chain_link("full", {"base/5/1": 4 * BS}, None)
    middle = chain_link("i1", {"base/5/1": 2 * BS}, {})  # rewritten whole, shorter
    newest = chain_link("i2", {}, {"base/5/1": [[3, 1]]})  # then extended
    needs = Needs.of([newest, middle, oldest], where, BS)
    planned = needs.files["base/5/1"]
    assert (planned.base, planned.base_blocks, planned.changed) == (1, 2, {3: 0})
    assert planned.sources == {0, 1}  # the full backup gives nothing
    assert planned.unheld == 1  # block 2: never written since the file was rewritten


def test_a_file_that_is_not_relation_data_must_be_held_by_the_chain(tmp_path: Path) -> None:
    where = {"data": Destination("data", str(tmp_path), "")}
    oldest = chain_link("full", {}, None)  # not there: the chain is damaged
    newest = chain_link("i1", {}, {"pg_xact/0000": [[0, 1]]})
    with pytest.raises(IntegrityError, match="pg_xact/0000: no backup of the chain holds"):
        Needs.of([newest, oldest], where, BS)


def test_consecutive_blocks_are_written_as_one_run_and_checksummed_as_written(
    tmp_path: Path,
) -> None:
    target = str(tmp_path / "rel")
    needs = Needs(BS, checksums=True)
    # four blocks whole in link 1; blocks 1, 2 and 4 changed in link 0; block 5 in no link
    needs.files["base/5/1"] = need(target, 6, (1, 4), {1: 0, 2: 0, 4: 0})
    newest = BlockSink(needs, "base/5/1", [1, 2, 4], None, 0)
    newest.data(memoryview(b"N" * BS + b"O" * BS + b"P" * BS))
    newest.end()
    older = BlockSink(needs, "base/5/1", None, None, 1)
    whole = blocks_of(b"abcd")
    older.data(memoryview(whole[: 3 * BS + 100]))  # block 3 cut where a chunk ends
    older.data(memoryview(whole[3 * BS + 100 :]))
    older.end()
    planned = needs.files["base/5/1"]
    # blocks 1 and 2 in one write; 4 after a gap; 0 and 3 from the older link
    assert sorted((first, count) for first, count, _n, _c in planned.pieces) == [
        (0, 1),
        (1, 2),
        (3, 1),
        (4, 1),
    ]
    assert needs.written == {0: [3, 3 * BS], 1: [2, 2 * BS]}
    assert finish_needs(needs, None) == ["base/5/1: 1 blocks held by no link, zeroed"]
    with open(target, "rb") as fh:
        restored = fh.read()
    assert restored == b"a" * BS + b"N" * BS + b"O" * BS + b"d" * BS + b"P" * BS + bytes(BS)
    assert planned.checksum(Crc32cJoin(BS)) == checksum_of(CRC32C, restored)


def test_a_short_last_block_is_checksummed_and_a_run_of_the_wrong_length_is_not(
    tmp_path: Path,
) -> None:
    size = 2 * BS + 300  # a non-relation file: its last block is short
    content = bytes(range(256)) * (size // 256) + bytes(size % 256)
    needs = Needs(BS, checksums=True)
    needs.files["pg_xact/0000"] = Need.plan(str(tmp_path / "xact"), size, 1.0, BS, (0, size), {})
    sink = BlockSink(needs, "pg_xact/0000", None, None, 0)
    sink.data(memoryview(content))
    sink.end()
    assert finish_needs(needs, None) == []
    assert needs.files["pg_xact/0000"].checksum(Crc32cJoin(BS)) == checksum_of(CRC32C, content)
    # an older copy one byte longer than the file as restored: read back, not trusted
    longer = Needs(BS, checksums=True)
    other = str(tmp_path / "other")
    longer.files["pg_xact/0000"] = Need.plan(other, size, 1.0, BS, (0, size + 1), {})
    sink = BlockSink(longer, "pg_xact/0000", None, None, 0)
    sink.data(memoryview(content + b"x"))
    sink.end()
    assert longer.files["pg_xact/0000"].checksum(Crc32cJoin(BS)) is None


def test_a_file_is_settled_as_soon_as_its_last_block_is_written(tmp_path: Path) -> None:
    settled: list[str] = []

    def settle(done: Need) -> bool:
        settle_need(done, None)
        settled.append(done.path)
        return True

    needs = Needs(BS)
    needs.on_complete = settle
    target = str(tmp_path / "rel")
    needs.files["base/5/1"] = Need.plan(target, 3 * BS, 7.0, BS, (1, 3 * BS), {2: 0})
    feed(needs, "base/5/1", [2], b"N" * BS, 0)
    assert settled == []  # blocks 0 and 1 still missing
    feed(needs, "base/5/1", None, blocks_of(b"abc"), 1)
    # settled before the end of the restore: dated as in the backup, ready to be fsynced
    assert settled == [target]
    assert os.stat(target).st_mtime == 7.0
    assert finish_needs(needs, None) == []
    assert settled == [target]


def test_a_file_that_cannot_be_settled_yet_is_left_to_the_end(tmp_path: Path) -> None:
    needs = Needs(BS)
    needs.on_complete = lambda _need: False  # e.g. the data directory's owner is not known
    target = str(tmp_path / "rel")
    needs.files["base/5/1"] = Need.plan(target, BS, 7.0, BS, (0, BS), {})
    feed(needs, "base/5/1", None, b"a" * BS, 0)
    assert not needs.files["base/5/1"].settled
    assert finish_needs(needs, None) == []
    assert needs.files["base/5/1"].settled
    assert os.stat(target).st_mtime == 7.0
