"""core.encryption and core.keyring on a local store: the key file, sealing and opening."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.catalog.layout import ArchiveRef, parse_archive_name
from core.codecs import get_codec
from core.crypto import Passphrase, generate_identity
from core.encryption import (
    DATA_IDENTITY_ENV,
    Credentials,
    EncryptingCompressor,
    PushDecryptor,
    credentials_environment,
    is_encrypted,
    open_object,
    seal,
    unlock_server,
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


def test_rotation_with_passphrase_and_identity_keeps_every_data_key(store: ObjectStore) -> None:
    """`keys rotate` given both the passphrase and an operator identity: each wrap of the
    rotated file opens every generation (none dropped for the passphrase's sake)."""
    operator = generate_identity()
    init_keys(store, "pg1", _pass(), (operator.recipient(),))
    old = seal(b"old", write_recipient(store, "pg1"))
    rotate_keys(store, "pg1", Unlock(_pass(), (operator,)))
    rotated = rotate_keys(store, "pg1", Unlock(_pass(), (operator,)))
    assert [g.number for g in rotated.generations] == [1, 2, 3]
    new = seal(b"new", write_recipient(store, "pg1"))
    for held in (
        Credentials(_pass()),
        Credentials(None, (operator,)),
        Credentials(_pass(), (operator,)),
    ):
        use_credentials(held)
        assert len(unlocked_keys(store, "pg1").identities) == 3
        assert open_object(store, "pg1", old, "old") == b"old"
        assert open_object(store, "pg1", new, "new") == b"new"


def _archive_history(store: ObjectStore, tmp_path: Path) -> bytes:
    from core.wal.archive import ArchiveSettings, WalArchiver

    history = tmp_path / "00000002.history"
    history.write_text("1\t0/3000000\tno recovery target specified\n")
    WalArchiver(store, "pg1", ArchiveSettings(compression="zstd")).archive(str(history))
    return history.read_bytes()


def test_wal_restore_opens_wal_with_the_handed_data_keys_and_no_passphrase(
    store: ObjectStore, tmp_path: Path
) -> None:
    """What a restore writes for restore_command: the unlocked data keys in the 0600
    credentials file, so each wal-restore needs neither the passphrase nor its scrypt."""
    from core.credentials_file import StoredCredentials, write_credentials
    from core.crypto.passphrase import PASSPHRASE_ENV
    from tests.support.cli import pgvault

    init_keys(store, "pg1", Passphrase("the restore's passphrase"), ())
    expected = _archive_history(store, tmp_path)
    use_credentials(Credentials(Passphrase("the restore's passphrase")))
    keys = unlocked_keys(store, "pg1")
    handed = credentials_environment(Credentials(), keys)  # the data keys only
    assert set(handed) == {DATA_IDENTITY_ENV}
    credentials = tmp_path / "credentials.json"
    write_credentials(str(credentials), StoredCredentials(environment=handed))
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600

    url = f"file://{tmp_path}/dest"
    env = {k: v for k, v in os.environ.items() if k not in (PASSPHRASE_ENV, DATA_IDENTITY_ENV)}
    locked = pgvault("wal-restore", url, "pg1", "00000002.history", str(tmp_path / "a"), env=env)
    assert locked.returncode == 1 and "locked" in locked.stderr, locked.stderr
    restored = tmp_path / "restored"
    args = ("--credentials-file", str(credentials), url, "pg1", "00000002.history")
    done = pgvault("wal-restore", *args, str(restored), env=env)
    assert done.returncode == 0, done.stderr
    assert restored.read_bytes() == expected
    assert keys.identities[0].secret() not in done.stdout + done.stderr


def test_handed_data_keys_that_no_longer_fit_fall_back_to_the_credentials(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys handed before a `keys rotate` lack the new generation: the passphrase held
    unlocks the file instead; without it, the error says what is missing."""
    from core.crypto import export_keys

    init_keys(store, "pg1", _pass(), ())
    use_credentials(Credentials(_pass()))
    handed = export_keys(unlocked_keys(store, "pg1"))
    monkeypatch.setenv(DATA_IDENTITY_ENV, handed)
    use_credentials(Credentials())
    old = seal(b"old", write_recipient(store, "pg1"))
    assert open_object(store, "pg1", old, "old") == b"old"  # no passphrase held

    rotate_keys(store, "pg1", Unlock(_pass(), ()))
    new = seal(b"new", write_recipient(store, "pg1"))
    use_credentials(Credentials())
    with pytest.raises(DecryptionFailed, match="locked"):
        open_object(store, "pg1", new, "new")
    use_credentials(Credentials(_pass()))
    assert open_object(store, "pg1", new, "new") == b"new"
    assert open_object(store, "pg1", old, "old") == b"old"
    monkeypatch.setenv(DATA_IDENTITY_ENV, handed.replace("pg1", "pg2"))
    use_credentials(Credentials())
    with pytest.raises(DecryptionFailed, match="locked"):  # another server's: not used
        open_object(store, "pg1", old, "old")


def test_rotation_refuses_a_wrong_passphrase_even_with_an_identity(store: ObjectStore) -> None:
    """The identity opens the file, but the new key would be wrapped for the wrong
    passphrase (silently changing it): refused, the key file unchanged."""
    operator = generate_identity()
    init_keys(store, "pg1", _pass(), (operator.recipient(),))
    with pytest.raises(DecryptionFailed, match="passphrase is wrong"):
        rotate_keys(store, "pg1", Unlock(_pass("a typo"), (operator,)))
    use_credentials(Credentials(_pass()))
    assert len(unlocked_keys(store, "pg1").identities) == 1


def test_unlock_in_background_gives_the_keys_or_its_error_once(store: ObjectStore) -> None:
    from core.encryption import unlock_in_background

    init_keys(store, "pg1", _pass(), ())
    use_credentials(Credentials(_pass("not the right one")))
    unlock_in_background(store, "pg1")
    with pytest.raises(DecryptionFailed, match="passphrase is wrong"):
        unlocked_keys(store, "pg1")
    use_credentials(Credentials(_pass()))
    unlock_in_background(store, "pg1")
    assert len(unlocked_keys(store, "pg1").identities) == 1
    unlock_in_background(store, "pg2")  # a clear server: nothing to unlock, no error kept
    with pytest.raises(DecryptionFailed, match="no key file"):
        unlocked_keys(store, "pg2")


def test_two_destinations_with_a_server_of_one_name_keep_their_own_keys(tmp_path: Path) -> None:
    """A console unlocks `main` of staging and `main` of production, each with its key."""
    stores = [
        open_store(parse_location(f"file://{tmp_path}/{name}"), StoreConfig())
        for name in ("staging", "production")
    ]
    try:
        sealed = []
        for store, words in zip(stores, ("staging words", "production words"), strict=True):
            init_keys(store, "main", _pass(words), ())
            sealed.append(
                seal(b"pgvault.json of " + words.encode(), write_recipient(store, "main"))
            )
            unlock_server(store, "main", Credentials(_pass(words)))
        assert open_object(stores[0], "main", sealed[0], "x") == b"pgvault.json of staging words"
        assert open_object(stores[1], "main", sealed[1], "x") == b"pgvault.json of production words"
        with pytest.raises(DecryptionFailed):
            open_object(stores[0], "main", sealed[1], "x")
    finally:
        for store in stores:
            store.close()
        use_credentials(Credentials())
