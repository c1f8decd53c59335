"""Resume by chunk, at the archive level: the chunks a killed part recorded, what a new run
keeps of them, and the object it completes (byte for byte what a fresh run stores)."""

from __future__ import annotations

import itertools
import os
from dataclasses import replace
from pathlib import Path

import pytest

from core.archives import ArchiveSettings, ArchiveSetWriter, ArchiveTarget, PartUpload
from core.backup.part_uploads import (
    ChunkRecorder,
    StoredBackup,
    load_uploads,
    reusable,
    starting_at,
)
from core.backup.resume import PartCheckpoint, load_checkpoints, write_checkpoint
from core.catalog.layout import ServerLayout
from core.catalog.manifest import CRC32C, ArchiveRecord, FileRecord
from core.codecs import get_codec
from core.crypto.keys import generate_identity
from core.encryption import Credentials, use_credentials
from core.keyring import init_keys
from core.postgres.pgdata import Entry, Tree
from core.progress import Tracker
from core.storage import ObjectStore, PutOptions, StoreConfig, open_store
from core.urls import parse_location

MiB = 1024 * 1024
KILLED, FRESH = "20261121T101010", "20261121T111111"


class Killed(Exception):
    """Stands for the SIGKILL: the writer is left as it is, neither closed nor aborted."""


def _tree(root: Path) -> Tree:
    (root / "base").mkdir(parents=True, exist_ok=True)
    entries = [Entry(".", True, 0, 0o700, os.getuid(), os.getgid(), 0.0)]
    entries.append(Entry("base", True, 0, 0o700, os.getuid(), os.getgid(), 0.0))
    for n in range(24):
        path = root / "base" / f"f{n}"
        if not path.exists():
            path.write_bytes(bytes([n]) * 100 + os.urandom(MiB - 100))
        st = path.stat()
        entries.append(
            Entry(f"base/f{n}", False, st.st_size, 0o600, st.st_uid, st.st_gid, st.st_mtime)
        )
    return Tree(str(root), "", entries)


def _settings(compression: str | None, encrypted: bool) -> ArchiveSettings:
    recipient = generate_identity().recipient() if encrypted else None
    return ArchiveSettings(
        get_codec(compression), None, 2, 1 << 40, MiB, PutOptions(), CRC32C, recipient
    )


def _write(
    store: ObjectStore,
    backup_id: str,
    tree: Tree,
    settings: ArchiveSettings,
    recorder: ChunkRecorder,
    kill_after: int | None = None,
) -> ArchiveSetWriter:
    tracker = Tracker()
    recorded = StoredBackup(store, ServerLayout("pg"), backup_id)

    def checkpoint() -> None:
        upload = load_uploads(recorded).get("data") if kill_after is not None else None
        if upload is not None and kill_after is not None and len(upload.chunks) >= kill_after:
            raise Killed

    target = ArchiveTarget(store, ServerLayout("pg"), backup_id, tracker, checkpoint)
    writer = ArchiveSetWriter(target, "data", settings, uploads=recorder)
    writer.add_tree(Tree(tree.root, tree.manifest_prefix, list(tree.entries)))
    writer.close()
    return writer


def _killed_then_resumed(
    tmp_path: Path, compression: str | None, encrypted: bool, change: bool = False
) -> tuple[ObjectStore, int, list[str], StoredBackup]:
    store = open_store(parse_location(f"file://{tmp_path}/dest"), StoreConfig())
    tree = _tree(tmp_path / "pgdata")
    settings = _settings(compression, encrypted)
    backup = StoredBackup(store, ServerLayout("pg"), KILLED)
    with pytest.raises(Killed):
        _write(store, KILLED, tree, settings, ChunkRecorder(backup, PutOptions(), {}, _no), 5)
    record = load_uploads(backup)["data"]
    assert [m.chunk.number for m in record.chunks][:5] == [1, 2, 3, 4, 5]
    if change:  # the third file is rewritten with the same size: a new mtime
        path = tmp_path / "pgdata" / "base" / "f2"
        path.write_bytes(os.urandom(MiB))
        os.utime(path, (1, 1))
        tree = _tree(tmp_path / "pgdata")
    upload, why = reusable(record, tree)
    logs: list[str] = [why] if why else []
    reused: list[int] = []
    continued = {record.filename: upload} if upload else {}
    recorder = ChunkRecorder(backup, PutOptions(), continued, lambda _, n: reused.append(n))
    _write(store, KILLED, tree, settings, recorder)
    return store, sum(reused), logs, backup


def _no(filename: str, stored: int) -> None:
    raise AssertionError("nothing is reused by a first run")


def test_an_uncompressed_part_reuses_its_recorded_chunks_byte_for_byte(tmp_path: Path) -> None:
    store, reused, logs, _ = _killed_then_resumed(tmp_path, None, False)
    assert reused >= 5 * MiB and logs == []
    fresh = _write(
        store,
        FRESH,
        _tree(tmp_path / "pgdata"),
        _settings(None, False),
        ChunkRecorder(StoredBackup(store, ServerLayout("pg"), FRESH), PutOptions(), {}, _no),
    )
    assert fresh.archives[0].filename == "data.tar"
    assert store.get_bytes(f"pg/base/{KILLED}/data.tar") == store.get_bytes(
        f"pg/base/{FRESH}/data.tar"
    )
    assert store.list_pending_uploads("") == []


def test_zstd_output_is_the_same_again_so_its_chunks_are_reused(tmp_path: Path) -> None:
    store, reused, _, _ = _killed_then_resumed(tmp_path, "zstd", False)
    assert reused >= 5 * MiB
    stored = store.get_bytes(f"pg/base/{KILLED}/data.tar.zst")
    tar = get_codec("zstd").decompress(stored)  # type: ignore[union-attr]
    assert (tmp_path / "pgdata" / "base" / "f7").read_bytes() in tar


def test_an_encrypted_part_never_matches_and_is_sent_whole_again(tmp_path: Path) -> None:
    # age draws a new file key per stream: the same files never make the same bytes.
    store, reused, _, _ = _killed_then_resumed(tmp_path, None, True)
    assert reused == 0
    assert store.list_pending_uploads("") == []


def test_a_changed_file_ends_the_chunks_kept_before_it(tmp_path: Path) -> None:
    store, reused, logs, _ = _killed_then_resumed(tmp_path, None, False, change=True)
    assert logs == ["base/f2 changed since"]
    assert 0 < reused < 3 * MiB  # only chunks that end before f2's header
    data = store.get_bytes(f"pg/base/{KILLED}/data.tar")
    assert (tmp_path / "pgdata" / "base" / "f2").read_bytes() in data


def test_a_part_resumes_from_its_first_file_only_if_it_is_still_there(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    started = starting_at(tree, "base/f3")
    assert started is not None and started.entries[0].path == "base/f3"
    assert starting_at(tree, None) is tree
    assert starting_at(replace(tree, entries=tree.entries[:3]), "base/f3") is None


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_long_part_is_recorded_at_every_percent_of_growth_not_every_chunk(
    tmp_path: Path, jobs: int
) -> None:
    store = open_store(parse_location(f"file://{tmp_path}/dest"), StoreConfig(jobs=jobs))
    tree = _tree(tmp_path / "pgdata")  # 24 MiB
    settings = replace(_settings(None, False), chunk_size=16 * 1024)  # about 1,540 chunks
    backup = StoredBackup(store, ServerLayout("pg"), FRESH)
    records: list[int] = []  # chunks covered by each record written (all of 16 KiB but the last)

    class Counting(ChunkRecorder):
        def chunk_stored(self, upload: PartUpload) -> None:
            records.append(len(upload.chunks))
            super().chunk_stored(upload)

    _write(store, FRESH, tree, settings, Counting(backup, PutOptions(), {}, _no))
    chunks = -(-store.head(f"pg/base/{FRESH}/data.tar").size // (16 * 1024))
    steps = list(itertools.pairwise(records))
    # Never more often than every 1% of growth, and the last one within 1% of the end.
    assert all(b > 1.01 * a for a, b in steps), records
    assert records[-1] >= 0.99 * chunks - 1
    assert len(records) < chunks / 3  # 1% steps: about 100 + ln(chunks/100) / ln(1.01)
    if jobs == 1:
        # One part in flight: chunks are confirmed in order, one at a time, so a record is
        # written at the very chunk that passes 1% (every chunk early on, where 1% of the
        # part is less than one). With more, a slow upload thread holds the prefix back.
        assert records[0] == 1 and all(b - 1 <= 1.01 * a for a, b in steps), records


def test_an_encrypted_backups_part_records_are_sealed_and_read_back_with_its_keys(
    tmp_path: Path,
) -> None:
    """A finished part's record lists its files' paths, sizes and checksums: an encrypted
    backup's is an age file, opened by a resume that holds the server's keys."""
    operator = generate_identity()
    store = open_store(parse_location(f"file://{tmp_path}/dest"), StoreConfig())
    keyfile = init_keys(store, "pg1", None, (operator.recipient(),))
    stored = StoredBackup(store, ServerLayout("pg1"), KILLED, keyfile.recipient)
    record = ArchiveRecord("data.tar.age", "data", 0, 10, "1234abcd", 10240, 1)
    files = (FileRecord("base/5/16384", 8192, 1.0, "89ab12cd", "data.tar.age", 512),)
    write_checkpoint(stored, PartCheckpoint(record, files), PutOptions())

    [raw] = [store.get_bytes(o.key) for o in store.list_objects(stored.key("pgvault-checkpoint"))]
    assert raw.startswith(b"age-encryption.org/v1\n") and b"base/5/16384" not in raw
    use_credentials(Credentials(identities=(operator,)))
    try:
        assert load_checkpoints(stored) == {"data": [PartCheckpoint(record, files)]}
    finally:
        use_credentials(Credentials())
