"""The repository key file: unlock once, rewrap without touching objects, rotate data keys."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from core.crypto import (
    DecryptingReader,
    Passphrase,
    create_keyfile,
    decrypt_bytes,
    encrypt_bytes,
    generate_identity,
    parse_keyfile,
    passphrase_from_env,
    read_identity_file,
    read_passphrase_file,
    rewrap,
    rotate,
    serialize_keyfile,
    unlock,
)
from core.errors import DecryptionFailed, ExitCode, InputError
from core.secrets import redact

NOW = "2026-12-03T10:00:00Z"
LATER = "2026-12-03T11:00:00Z"
# Tests that only need a passphrase wrap keep scrypt cheap; the interop tests use the default.
PASS = Passphrase("first passphrase", log_n=10)


def test_create_serialize_parse_unlock() -> None:
    keyfile, keys = create_keyfile("main", PASS, [], NOW)
    text = serialize_keyfile(keyfile)
    assert "AGE-SECRET-KEY" not in text and keys.identities[0].secret() not in text
    parsed = parse_keyfile(text, "main")
    assert parsed == keyfile and parsed.recipient == keys.recipient
    assert unlock(parsed, Passphrase("first passphrase")) == keys


def test_objects_use_an_x25519_stanza_not_scrypt() -> None:
    keyfile, keys = create_keyfile("main", PASS, [], NOW)
    sealed = encrypt_bytes(b"segment", [keyfile.recipient])
    assert b"-> X25519 " in sealed and b"scrypt" not in sealed
    assert DecryptingReader(io.BytesIO(sealed), keys.identities, "wal").read() == b"segment"


def test_wrong_passphrase_is_a_clear_failure_that_never_shows_it() -> None:
    keyfile, _ = create_keyfile("main", PASS, [], NOW)
    with pytest.raises(DecryptionFailed) as info:
        unlock(keyfile, Passphrase("guessed wrongly"))
    assert str(info.value) == "the key file of server main: the passphrase is wrong"
    assert info.value.exit_code == ExitCode.FAILED
    assert "guessed wrongly" not in repr(info.value) and "first passphrase" not in str(info.value)
    assert redact("x guessed wrongly y") == "x *** y"


def test_locked_key_file_says_what_it_needs() -> None:
    operator = generate_identity()
    keyfile, _ = create_keyfile("main", PASS, [operator.recipient()], NOW)
    with pytest.raises(
        DecryptionFailed,
        match=r"locked: reading needs the encryption passphrase \(--encryption-passphrase-file "
        r"or PGVAULT_ENCRYPTION_PASSPHRASE\) or an operator identity \(--identity-file or "
        r"PGVAULT_ENCRYPTION_IDENTITY\)",
    ):
        unlock(keyfile)
    assert unlock(keyfile, identities=[operator]).recipient == keyfile.recipient
    with pytest.raises(DecryptionFailed, match="none of the 1 key"):
        unlock(keyfile, identities=[generate_identity()])


def test_key_file_of_another_server_is_refused() -> None:
    keyfile, _ = create_keyfile("other", PASS, [], NOW)
    with pytest.raises(DecryptionFailed, match="belongs to server 'other'"):
        parse_keyfile(serialize_keyfile(keyfile), "main")
    renamed = serialize_keyfile(keyfile).replace("server: other", "server: main")
    with pytest.raises(DecryptionFailed, match="keys of another server"):
        unlock(parse_keyfile(renamed, "main"), PASS)


def test_a_swapped_clear_recipient_is_caught_on_unlock() -> None:
    keyfile, _ = create_keyfile("main", PASS, [], NOW)
    intruder = str(generate_identity().recipient())
    text = serialize_keyfile(keyfile).replace(str(keyfile.recipient), intruder)
    with pytest.raises(DecryptionFailed, match="was modified"):
        unlock(parse_keyfile(text, "main"), PASS)


def test_a_changed_operator_list_is_caught_on_unlock() -> None:
    operator, intruder = generate_identity(), generate_identity()
    keyfile, _ = create_keyfile("main", PASS, [operator.recipient()], NOW)
    text = serialize_keyfile(keyfile).replace(
        f"wrap: recipients {operator.recipient()}",
        f"wrap: recipients {operator.recipient()},{intruder.recipient()}",
    )
    with pytest.raises(DecryptionFailed, match="was modified: its clear lines"):
        unlock(parse_keyfile(text, "main"), PASS)


def test_malformed_key_files() -> None:
    for text in (
        "",
        "hello\n",
        "pgvault-keyfile: v1\nserver: main\n",
        "pgvault-keyfile: v1\nserver: main\ngeneration: x\n",
    ):
        with pytest.raises(DecryptionFailed):
            parse_keyfile(text, "main")


def test_change_passphrase_rewrites_only_the_wrap() -> None:
    keyfile, keys = create_keyfile("main", PASS, [], NOW)
    obj = encrypt_bytes(b"old object", [keyfile.recipient])
    new_pass = Passphrase("second passphrase", log_n=10)
    changed = rewrap(keyfile, keys, passphrase=new_pass)
    assert changed.generations == keyfile.generations
    with pytest.raises(DecryptionFailed, match="passphrase is wrong"):
        unlock(changed, PASS)
    assert decrypt_bytes(obj, unlock(changed, new_pass).identities) == b"old object"


def test_add_and_remove_recipients_keep_the_passphrase_wrap() -> None:
    keyfile, keys = create_keyfile("main", PASS, [], NOW)
    operator = generate_identity()
    added = rewrap(keyfile, keys, recipients=[operator.recipient()])
    assert added.wrap("passphrase") == keyfile.wrap("passphrase")
    assert unlock(added, identities=[operator]) == keys
    removed = rewrap(added, keys, recipients=[])
    assert removed.wrap("recipients") is None and unlock(removed, PASS) == keys
    with pytest.raises(InputError, match=r"refused: .* no passphrase and no recipient"):
        rewrap(removed, keys, drop_passphrase=True)


def test_rotation_keeps_old_objects_readable() -> None:
    operator = generate_identity()
    keyfile, keys = create_keyfile("main", PASS, [operator.recipient()], NOW)
    before = encrypt_bytes(b"before", [keyfile.recipient])
    with pytest.raises(InputError, match="needs the passphrase"):
        rotate(keyfile, keys, None, LATER)
    rotated, new_keys = rotate(keyfile, keys, PASS, LATER)
    assert rotated.recipient != keyfile.recipient and len(rotated.generations) == 2
    after = encrypt_bytes(b"after", [rotated.recipient])
    for unlocked in (unlock(rotated, PASS), unlock(rotated, identities=[operator])):
        assert unlocked == new_keys
        assert decrypt_bytes(before, unlocked.identities) == b"before"
        assert decrypt_bytes(after, unlocked.identities) == b"after"
    with pytest.raises(DecryptionFailed):
        decrypt_bytes(after, keys.identities, "after")
    assert parse_keyfile(serialize_keyfile(rotated), "main") == rotated


def test_passphrase_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "pass"
    path.write_text("from a file secret\n")
    path.chmod(0o644)
    with pytest.raises(InputError, match="group or others can access it"):
        read_passphrase_file(path)
    path.chmod(0o600)
    assert read_passphrase_file(path).value == "from a file secret"
    assert "from a file secret" not in repr(read_passphrase_file(path))
    assert redact("said from a file secret") == "said ***"
    path.write_text("")
    with pytest.raises(InputError, match="empty"):
        read_passphrase_file(path)
    with pytest.raises(InputError, match="cannot read"):
        read_passphrase_file(tmp_path / "missing")


def test_passphrase_from_environment() -> None:
    assert passphrase_from_env({}) is None
    got = passphrase_from_env({"PGVAULT_ENCRYPTION_PASSPHRASE": "env secret value"})
    assert got is not None and got.value == "env secret value"
    assert redact("env secret value") == "***"
    with pytest.raises(InputError, match="set but empty"):
        passphrase_from_env({"PGVAULT_ENCRYPTION_PASSPHRASE": ""})


def test_identity_file_rules(tmp_path: Path) -> None:
    identity = generate_identity()
    path = tmp_path / "id.txt"
    path.write_text(f"# created\n{identity.secret()}\n")
    path.chmod(0o640)
    with pytest.raises(InputError, match="group or others"):
        read_identity_file(path)
    path.chmod(0o600)
    assert read_identity_file(path) == (identity,)
    path.write_text("# only comments\n")
    with pytest.raises(InputError, match="holds no AGE-SECRET-KEY"):
        read_identity_file(path)
