"""Archive sets: files that change while they are read, rollover, offsets, compression."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from core.archives import ArchiveSettings, ArchiveSetWriter, ArchiveTarget
from core.catalog.layout import ServerLayout
from core.catalog.manifest import CRC32C, checksum_of
from core.codecs import get_codec
from core.postgres.pgdata import Entry, Tree
from core.progress import Tracker
from core.storage import PutOptions, StoreConfig, open_store
from core.tarstream import FileAttributes
from core.urls import parse_location


def _entry(path: str, size: int, is_dir: bool = False) -> Entry:
    return Entry(path, is_dir, size, 0o700 if is_dir else 0o600, os.getuid(), os.getgid(), 0.0)


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return {
            m.name: (tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
            for m in tar
        }


@pytest.mark.parametrize("compression", [None, "zstd", "gzip", "lz4"])
def test_files_that_change_are_sent_as_postgresql_sends_them(
    tmp_path: Path, compression: str | None
) -> None:
    root = tmp_path / "pgdata"
    (root / "base").mkdir(parents=True)
    (root / "base" / "grew").write_bytes(b"a" * 5000 + b"EXTRA")  # scanned at 5000 bytes
    (root / "base" / "shrank").write_bytes(b"b" * 100)  # scanned at 3000 bytes
    (root / "base" / "same").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    tree = Tree(str(root), "")
    tree.entries = [
        _entry(".", 0, True),
        _entry("base", 0, True),
        _entry("base/grew", 5000),
        _entry("base/shrank", 3000),
        _entry("base/vanished", 42),  # no longer on disk
        _entry("base/same", 3 * 1024 * 1024 + 17),
    ]
    store = open_store(parse_location(f"file://{tmp_path}/dest"), StoreConfig())
    tracker = Tracker()
    codec = get_codec(compression)
    writer = ArchiveSetWriter(
        ArchiveTarget(store, ServerLayout("pg"), "20261121T101010", tracker, tracker.checkpoint),
        "data",
        ArchiveSettings(codec, None, 2, 1 << 40, 1 << 20, PutOptions(), CRC32C),
    )
    writer.add_tree(tree)
    (archive,) = writer.close()
    stored = store.get_bytes(f"pg/base/20261121T101010/{archive.filename}")
    assert archive.size == len(stored) and archive.checksum == checksum_of(CRC32C, stored)
    tar = codec.decompress(stored) if codec else stored
    assert archive.tar_size == len(tar) and len(tar) % 10240 == 0
    members = _members(tar)
    assert members["base/grew"] == b"a" * 5000
    assert members["base/shrank"] == b"b" * 100 + bytes(2900)
    assert "base/vanished" not in members
    assert members["base/same"] == (root / "base" / "same").read_bytes()
    assert tree.excluded["vanished"] == 1
    records = {m.manifest_path: m.record() for m in writer.members}
    assert set(records) == {"base/grew", "base/shrank", "base/same"}
    for path, record in records.items():
        assert record.checksum == checksum_of(CRC32C, members[path])
        assert record.archive == archive.filename
        assert tar[record.offset : record.offset + record.size] == members[path]


def test_rollover_happens_before_a_file_once_a_part_passed_max_size(tmp_path: Path) -> None:
    root = tmp_path / "ts"
    (root / "PG_15_1").mkdir(parents=True)
    tree = Tree(str(root), "pg_tblspc/16384/")
    tree.entries = [_entry("PG_15_1", 0, True)]
    for i in range(6):
        (root / "PG_15_1" / str(i)).write_bytes(os.urandom(300_000))
        tree.entries.append(_entry(f"PG_15_1/{i}", 300_000))
    store = open_store(parse_location(f"file://{tmp_path}/dest"), StoreConfig())
    tracker = Tracker()
    writer = ArchiveSetWriter(
        ArchiveTarget(store, ServerLayout("pg"), "20261121T101010", tracker, tracker.checkpoint),
        "16384",
        ArchiveSettings(None, None, 1, 500_000, 1 << 20, PutOptions(), CRC32C),
    )
    writer.add_tree(tree)
    parts = writer.close()
    assert [p.filename for p in parts] == ["16384.tar", "16384_0001.tar", "16384_0002.tar"]
    assert [p.files for p in parts] == [2, 2, 2]
    for member in writer.members:
        record = member.record()
        assert record.path.startswith("pg_tblspc/16384/PG_15_1/")
        tar = store.get_bytes(f"pg/base/20261121T101010/{record.archive}")
        data = tar[record.offset : record.offset + record.size]
        assert data == (root / record.path.removeprefix("pg_tblspc/16384/")).read_bytes()
    assert tracker.snapshot().bytes_done == 6 * 300_000


def test_abort_leaves_no_upload_and_no_codec_threads(tmp_path: Path) -> None:
    import threading
    import time

    store = open_store(parse_location(f"file://{tmp_path}/dest"), StoreConfig())
    tracker = Tracker()
    writer = ArchiveSetWriter(
        ArchiveTarget(store, ServerLayout("pg"), "20261121T101010", tracker, tracker.checkpoint),
        "data",
        ArchiveSettings(get_codec("gzip"), None, 2, 1 << 40, 1 << 20, PutOptions(), CRC32C),
    )
    for i in range(3):
        writer.add_bytes(f"f{i}", os.urandom(2 << 20), FileAttributes(0o600, 0, 0, 0.0))
    assert store.list_pending_uploads("")  # parts of data.tar.gz are on their way
    writer.abort()
    assert store.list_pending_uploads("") == []
    assert list(store.list_objects("")) == []
    deadline = time.monotonic() + 5
    while any(t.name.startswith("pgvault-codec") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "codec threads left running"
        time.sleep(0.05)


def test_a_stopped_reader_reads_no_further_into_the_file(tmp_path: Path) -> None:
    """Seen in the console: a paused backup at 9% read 46% once cancelled. Told to stop
    (cancel, failure), the reader read the rest of the file it was in, dropping it: as long
    as a 1 GiB segment takes to read, and every byte counted as done."""
    import threading

    from core.archives import BLOCK_SIZE, QUEUE_DEPTH, _TreeReader

    size = 64 << 20
    root = tmp_path / "pgdata"
    (root / "base").mkdir(parents=True)
    with open(root / "base" / "big", "wb") as f:
        f.truncate(size)
    tree = Tree(str(root), "")
    tree.entries = [_entry("base", 0, True), _entry("base/big", size)]
    tracker = Tracker()
    reader = _TreeReader(tree, CRC32C, tracker, tracker.checkpoint)
    reader.start()
    full = threading.Event()
    while not reader.blocks.full():  # nobody consumes: the reader waits for room
        full.wait(0.01)
    reader.stop()
    assert not reader.is_alive()
    done = tracker.snapshot().bytes_done
    assert done <= (QUEUE_DEPTH + 3) * BLOCK_SIZE, done
