"""Archiving one WAL file: barman's layout, every codec, never overwriting different bytes."""

from __future__ import annotations

import gzip
import os
import shutil

import pytest

from core.codecs import CODECS, get_codec
from core.errors import InputError
from core.wal.archive import (
    META_SHA256,
    META_SYSID,
    ArchiveSettings,
    WalArchiver,
    read_wal_file,
    resolve_level,
)
from core.wal.errors import WalConflict, WalRejected
from tests.support.destinations import TestDestination
from tests.support.postgres import world_dir
from tests.support.wal import HISTORY_2, WalSample, archived_bytes, archived_names

SERVER = "pg1"


@pytest.fixture
def scratch() -> object:
    path = world_dir("pgvault-walscratch-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _copy(sample: WalSample, name: str, directory: str, data: bytes | None = None) -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as fh:
        fh.write(sample.read(name) if data is None else data)
    return path


def test_every_codec_lands_in_barmans_layout_with_its_metadata(
    destination: TestDestination, wal_sample: WalSample
) -> None:
    segment = wal_sample.segments[0]
    with destination.store() as store:
        for i, codec in enumerate([None, *CODECS]):
            server = f"srv{i}"
            level = resolve_level(get_codec(codec), None)
            archiver = WalArchiver(store, server, ArchiveSettings(codec, level))
            result = archiver.archive(wal_sample.path(segment))
            suffix = get_codec(codec).suffix if codec else ""
            assert result.stored
            assert result.key == f"{server}/wals/{segment[:16]}/{segment}{suffix}"
            assert archived_bytes(store, result.key) == wal_sample.read(segment)
            meta = store.head(result.key).metadata_dict()
            assert meta[META_SYSID] == str(wal_sample.system_identifier)
            assert len(meta[META_SHA256]) == 64
        label = WalArchiver(store, SERVER, ArchiveSettings("zstd", 4)).archive(
            wal_sample.path(wal_sample.backup_label)
        )
        assert label.key == f"{SERVER}/wals/{segment[:16]}/{wal_sample.backup_label}.zst"


def test_identical_bytes_succeed_and_different_bytes_fail_keeping_the_original(
    destination: TestDestination, wal_sample: WalSample, scratch: str
) -> None:
    first, second = wal_sample.segments[:2]
    with destination.store() as store:
        archiver = WalArchiver(store, SERVER, ArchiveSettings("gzip", 1))
        stored = archiver.archive(wal_sample.path(first))
        again = archiver.archive(wal_sample.path(first))
        assert stored.stored and not again.stored and again.key == stored.key
        original = store.get_bytes(stored.key)

        # Same name, other bytes (a real segment of another position, fixed up to pass the
        # header checks would be refused anyway: use the file renamed, then a patched one).
        forged = bytearray(wal_sample.read(first))
        forged[100_000] ^= 0xFF
        path = _copy(wal_sample, first, scratch, bytes(forged))
        with pytest.raises(WalConflict, match="different content"):
            archiver.archive(path)
        # ... also when asked with another compression: the name is taken, whatever suffix.
        with pytest.raises(WalConflict):
            WalArchiver(store, SERVER, ArchiveSettings("zstd", 4)).archive(path)
        assert store.get_bytes(stored.key) == original
        assert list(archived_names(store, SERVER)) == [first]

        # An identical file under another compression is recognised, not stored twice.
        same = WalArchiver(store, SERVER, ArchiveSettings("lz4", 0)).archive(wal_sample.path(first))
        assert not same.stored
        assert [o.key for o in store.list_objects(f"{SERVER}/wals/")] == [stored.key]
        assert second not in archived_names(store, SERVER)


def test_objects_without_metadata_are_compared_byte_for_byte(
    destination: TestDestination, wal_sample: WalSample, scratch: str
) -> None:
    """What barman-cloud wrote carries no checksum: pgvault decompresses and compares."""
    name = wal_sample.segments[0]
    key = f"{SERVER}/wals/{name[:16]}/{name}.gz"
    with destination.store() as store:
        store.put_bytes(key, gzip.compress(wal_sample.read(name)))
        archiver = WalArchiver(store, SERVER, ArchiveSettings())
        assert not archiver.archive(wal_sample.path(name)).stored
        forged = bytearray(wal_sample.read(name))
        forged[-1] ^= 1
        with pytest.raises(WalConflict):
            archiver.archive(_copy(wal_sample, name, scratch, bytes(forged)))
        # An unreadable stored object is never taken for a match.
        store.delete_many([key])
        store.put_bytes(key, b"not gzip at all")
        with pytest.raises(WalConflict):
            archiver.archive(wal_sample.path(name))


def test_garbage_and_bad_names_are_refused_before_any_upload(
    destination: TestDestination, wal_sample: WalSample, scratch: str
) -> None:
    name = wal_sample.segments[0]
    with destination.store() as store:
        archiver = WalArchiver(store, SERVER, ArchiveSettings())
        with pytest.raises(WalRejected, match="refusing to archive"):
            archiver.archive(_copy(wal_sample, name, scratch, os.urandom(16 * 1024 * 1024)))
        with pytest.raises(WalRejected, match="belongs to the segment"):
            archiver.archive(
                _copy(wal_sample, wal_sample.segments[1], scratch, wal_sample.read(name))
            )
        with pytest.raises(InputError, match="invalid name"):
            archiver.archive(_copy(wal_sample, name, scratch) + "x")
        with pytest.raises(InputError, match="does not exist"):
            archiver.archive(os.path.join(scratch, "000000010000000000000099"))
        assert archived_names(store, SERVER) == {}


def test_history_files_get_history_tags_and_sit_under_wals(
    destination: TestDestination, scratch: str
) -> None:
    path = os.path.join(scratch, "00000002.history")
    with open(path, "wb") as fh:
        fh.write(HISTORY_2)
    settings = ArchiveSettings(
        "bzip2", 5, tags=(("kind", "wal"),), history_tags=(("kind", "history"),)
    )
    with destination.store() as store:
        result = WalArchiver(store, SERVER, settings).archive(path)
        assert result.key == f"{SERVER}/wals/00000002.history.bz2"
        assert store.get_tags(result.key) == {"kind": "history"}
        assert archived_bytes(store, result.key) == HISTORY_2


def test_segments_carry_the_wal_tags(destination: TestDestination, wal_sample: WalSample) -> None:
    settings = ArchiveSettings(tags=(("kind", "wal"),), history_tags=(("kind", "history"),))
    with destination.store() as store:
        result = WalArchiver(store, SERVER, settings).archive(
            wal_sample.path(wal_sample.segments[0])
        )
        assert store.get_tags(result.key) == {"kind": "wal"}


def test_azure_above_the_single_put_limit_uploads_concurrent_blocks(
    make_dest: object, wal_sample: WalSample
) -> None:
    dest = make_dest("azure")  # type: ignore[operator]
    name = wal_sample.segments[0]
    settings = ArchiveSettings(single_put_limit=1024 * 1024, block_size=2 * 1024 * 1024)
    with dest.store(jobs=3) as store:
        calls: list[int] = []
        original = store._mpu_part

        def counting(handle: object, number: int, offset: int, body: object) -> object:
            calls.append(number)
            return original(handle, number, offset, body)

        store._mpu_part = counting  # type: ignore[method-assign]
        result = WalArchiver(store, SERVER, settings).archive(wal_sample.path(name))
        assert sorted(calls) == list(range(1, 9))  # 16 MiB in 2 MiB blocks
        assert archived_bytes(store, result.key) == wal_sample.read(name)
        assert store.head(result.key).metadata_dict()[META_SYSID] == str(
            wal_sample.system_identifier
        )
        assert not WalArchiver(store, SERVER, settings).archive(wal_sample.path(name)).stored


def test_compression_levels_follow_barman() -> None:
    gz = get_codec("gzip")
    assert resolve_level(gz, None) == 6
    assert resolve_level(gz, "LOW") == 1
    assert resolve_level(gz, "high") == 9
    assert resolve_level(gz, "42") == 9
    assert resolve_level(get_codec("zstd"), "medium") == 4
    with pytest.raises(InputError):
        resolve_level(None, "high")
    with pytest.raises(InputError):
        resolve_level(gz, "fastest")
    assert read_wal_file  # exported for the pusher
