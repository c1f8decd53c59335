"""core.encryption and core.keyring on a local store: the key file, sealing and opening."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.catalog.layout import ArchiveRef, parse_archive_name
from core.codecs import get_codec
from core.crypto import Passphrase, generate_identity
from core.encryption import (
    Credentials,
    EncryptingCompressor,
    PushDecryptor,
    is_encrypted,
    open_object,
    seal,
    unlocked_keys,
    use_credentials,
    write_recipient,
)
from core.errors import DecryptionFailed, InputError, ObjectExists
from core.keyring import Rewrap, Unlock, init_keys, rewrap_keys, rotate_keys
from core.storage import ObjectStore, StoreConfig, open_store
from core.urls import parse_location


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ObjectStore]:
    with open_store(parse_location(f"file://{tmp_path}/dest"), StoreConfig()) as opened:
        yield opened
    use_credentials(Credentials())


def _pass(text: str = "secret words") -> Passphrase:
    return Passphrase(text, log_n=10)


def test_a_server_without_key_file_is_written_in_clear(store: ObjectStore) -> None:
    assert write_recipient(store, "pg1") is None
    assert seal(b"data", None) == b"data"
    assert open_object(store, "pg1", b"data", "x") == b"data"


def test_sealed_objects_open_once_unlocked_and_not_before(store: ObjectStore) -> None:
    init_keys(store, "pg1", _pass(), ())
    recipient = write_recipient(store, "pg1")
    sealed = seal(b"manifest", recipient)
    assert is_encrypted(sealed)
    use_credentials(Credentials())
    with pytest.raises(DecryptionFailed, match="locked"):
        open_object(store, "pg1", sealed, "pgvault.json")
    use_credentials(Credentials(_pass("not the right one")))
    with pytest.raises(DecryptionFailed, match="passphrase is wrong"):
        open_object(store, "pg1", sealed, "pgvault.json")
    use_credentials(Credentials(_pass()))
    assert open_object(store, "pg1", sealed, "pgvault.json") == b"manifest"


def test_init_refuses_an_existing_key_file(store: ObjectStore) -> None:
    init_keys(store, "pg1", _pass(), ())
    with pytest.raises(ObjectExists):
        init_keys(store, "pg1", _pass(), ())


def test_rotation_and_rewrap_keep_old_objects_readable(store: ObjectStore) -> None:
    operator = generate_identity()
    init_keys(store, "pg1", _pass(), (operator.recipient(),))
    old = seal(b"old", write_recipient(store, "pg1"))
    held = Unlock(_pass(), ())
    rotated = rotate_keys(store, "pg1", held)
    assert len(rotated.generations) == 2
    new = seal(b"new", write_recipient(store, "pg1"))
    rewrap_keys(store, "pg1", held, Rewrap(drop_passphrase=True))
    with pytest.raises(InputError, match="no passphrase and no recipient"):
        rewrap_keys(store, "pg1", Unlock(None, (operator,)), Rewrap(recipients=()))
    use_credentials(Credentials(None, (operator,)))
    assert open_object(store, "pg1", old, "a") == b"old"
    assert open_object(store, "pg1", new, "b") == b"new"
    assert len(unlocked_keys(store, "pg1").identities) == 2


@pytest.mark.parametrize("codec", [None, "zstd", "gzip"])
def test_part_transform_compresses_then_encrypts(codec: str | None) -> None:
    identity = generate_identity()
    inner = get_codec(codec).compressor(None, 1) if codec else None  # type: ignore[union-attr]
    transform = EncryptingCompressor(inner, identity.recipient())
    payload = os.urandom(50_000) * 4 + bytes(300_000)
    stored = b"".join(
        transform.compress(payload[i : i + 70_000]) for i in range(0, len(payload), 70_000)
    )
    stored += transform.flush()
    assert is_encrypted(stored)
    pushed = PushDecryptor((identity,), "part")
    plain = b"".join(pushed.feed(stored[i : i + 10_000]) for i in range(0, len(stored), 10_000))
    plain += pushed.finish()
    expected = plain if codec is None else get_codec(codec).decompress(plain)  # type: ignore[union-attr]
    assert expected == payload


def test_push_decryptor_names_truncation_and_tampering() -> None:
    identity = generate_identity()
    sealed = seal(os.urandom(200_000), identity.recipient())
    truncated = PushDecryptor((identity,), "data.tar.age")
    truncated.feed(sealed[:-100])
    with pytest.raises(DecryptionFailed, match=r"data\.tar\.age"):
        truncated.finish()
    flipped = bytearray(sealed)
    flipped[1000] ^= 1
    tampered = PushDecryptor((identity,), "data.tar.age")
    with pytest.raises(DecryptionFailed, match="modified"):
        tampered.feed(bytes(flipped))
        tampered.finish()


def test_archive_names_carry_the_age_suffix_after_compression() -> None:
    ref = ArchiveRef("data", 2, get_codec("zstd"), encrypted=True)
    assert ref.filename() == "data_0002.tar.zst.age"
    assert parse_archive_name("data_0002.tar.zst.age") == ref
    assert parse_archive_name("16384.tar.age") == ArchiveRef("16384", 0, None, True)
    assert parse_archive_name("data.tar.zst") == ArchiveRef("data", 0, get_codec("zstd"))
    assert parse_archive_name("data.tar.age.zst") is None


def test_wal_archiver_seals_history_files_and_wal_restore_opens_them(
    store: ObjectStore, tmp_path: Path
) -> None:
    from core.wal.archive import ArchiveSettings, WalArchiver
    from core.wal.restore import FetchOptions, WalFetcher

    init_keys(store, "pg1", _pass(), ())
    history = tmp_path / "00000002.history"
    history.write_text("1\t0/3000000\tno recovery target specified\n")
    result = WalArchiver(store, "pg1", ArchiveSettings(compression="gzip")).archive(str(history))
    assert is_encrypted(store.get_bytes(result.key))
    fetcher = WalFetcher(store, "pg1", FetchOptions(spool_dir=str(tmp_path / "spool")), "t")
    use_credentials(Credentials(_pass()))
    fetcher.fetch("00000002.history", str(tmp_path / "restored"))
    assert (tmp_path / "restored").read_bytes() == history.read_bytes()
