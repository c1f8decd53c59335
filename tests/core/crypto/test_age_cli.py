"""Interop with the standard `age` CLI (Debian age 1.1.1), both ways, and the recovery
procedure an operator follows when pgvault is gone."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from core.crypto import (
    Passphrase,
    create_keyfile,
    decrypt_bytes,
    encrypt_bytes,
    format_identity_file,
    generate_identity,
    parse_identity_file,
    parse_recipient,
    read_identity_file,
    rotate,
    serialize_keyfile,
)
from core.errors import DecryptionFailed

SIZES = [0, 1, 65535, 65536, 65537, 200000]


def _age(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["age", *args], input=stdin, capture_output=True, check=False)


def _age_tty(command: str, typed: str) -> subprocess.CompletedProcess[bytes]:
    """age reads passphrases from a terminal only: run it under script(1) and type them."""
    return subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        input=typed.encode(),
        capture_output=True,
        check=False,
        timeout=120,
    )


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("size", SIZES)
def test_age_cli_decrypts_what_pgvault_encrypts(tmp_path: Path, size: int) -> None:
    identity = generate_identity()
    data = os.urandom(size)
    obj = _write(tmp_path / "obj.age", encrypt_bytes(data, [identity.recipient()]))
    key = _write(tmp_path / "identity.txt", format_identity_file([identity]))
    # Through stdout: age creates an -o file only once it has a byte to write.
    result = _age("-d", "-i", str(key), str(obj))
    assert result.returncode == 0, result.stderr
    assert result.stdout == data


@pytest.mark.parametrize("size", SIZES)
def test_pgvault_decrypts_what_age_cli_encrypts(tmp_path: Path, size: int) -> None:
    key = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    key.chmod(0o600)
    public = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout
    identities = read_identity_file(key)
    assert identities[0].recipient() == parse_recipient(public)
    data = os.urandom(size)
    plain = _write(tmp_path / "plain", data)
    sealed = tmp_path / "plain.age"
    result = _age("-r", public.strip(), "-o", str(sealed), str(plain))
    assert result.returncode == 0, result.stderr
    assert decrypt_bytes(sealed.read_bytes(), identities, "plain.age") == data


def test_age_cli_rejects_a_flipped_byte_too(tmp_path: Path) -> None:
    identity = generate_identity()
    sealed = bytearray(encrypt_bytes(os.urandom(100000), [identity.recipient()]))
    sealed[-10] ^= 1
    obj = _write(tmp_path / "obj.age", bytes(sealed))
    key = _write(tmp_path / "identity.txt", format_identity_file([identity]))
    assert _age("-d", "-i", str(key), str(obj)).returncode == 1


def test_pgvault_reads_a_passphrase_file_of_the_age_cli(tmp_path: Path) -> None:
    plain = _write(tmp_path / "plain", b"written by age -p")
    sealed = tmp_path / "plain.age"
    result = _age_tty(f"age -p -o {sealed} {plain}", "age cli pass\nage cli pass\n")
    assert result.returncode == 0, result.stdout
    got = decrypt_bytes(sealed.read_bytes(), [Passphrase("age cli pass")], "plain.age")
    assert got == b"written by age -p"


def _extract(keyfile: Path, kind: str, out: Path) -> None:
    """The recovery procedure's first step, exactly as documented (sed over the key file)."""
    script = f"sed -n '/^wrap: {kind}/,/^-----END/p' {keyfile} | sed 1d > {out}"
    subprocess.run(["sh", "-c", script], check=True)


def test_recovery_with_the_passphrase_and_the_age_cli(tmp_path: Path) -> None:
    passphrase = Passphrase("recovery drill passphrase")
    keyfile, keys = create_keyfile("main", passphrase, [], "2026-12-03T10:00:00Z")
    old_object = encrypt_bytes(b"before rotation", [keyfile.recipient])
    keyfile, keys = rotate(keyfile, keys, passphrase, "2026-12-03T11:00:00Z")
    new_object = encrypt_bytes(b"after rotation", [keyfile.recipient])
    stored = _write(tmp_path / "keys", serialize_keyfile(keyfile))

    wrapped = tmp_path / "wrapped.age"
    _extract(stored, "passphrase", wrapped)
    identity = tmp_path / "identity.txt"
    command = f"age -d -o {shlex.quote(str(identity))} {shlex.quote(str(wrapped))}"
    result = _age_tty(command, "recovery drill passphrase\n")
    assert result.returncode == 0, result.stdout
    assert set(parse_identity_file(identity.read_text())) == set(keys.identities)
    for name, sealed, plain in (
        ("old", old_object, b"before rotation"),
        ("new", new_object, b"after rotation"),
    ):
        obj = _write(tmp_path / f"{name}.age", sealed)
        result = _age("-d", "-i", str(identity), str(obj))
        assert result.returncode == 0, result.stderr
        assert result.stdout == plain


def test_recovery_with_an_operator_identity_and_the_age_cli(tmp_path: Path) -> None:
    operator_key = tmp_path / "operator.txt"
    subprocess.run(["age-keygen", "-o", str(operator_key)], check=True, capture_output=True)
    operator = read_identity_file(operator_key)[0]
    keyfile, _ = create_keyfile("main", None, [operator.recipient()], "2026-12-03T10:00:00Z")
    obj = _write(tmp_path / "obj.age", encrypt_bytes(b"wal bytes", [keyfile.recipient]))
    stored = _write(tmp_path / "keys", serialize_keyfile(keyfile))
    wrapped = tmp_path / "wrapped.age"
    _extract(stored, "recipients", wrapped)
    identity = tmp_path / "identity.txt"
    result = _age("-d", "-i", str(operator_key), "-o", str(identity), str(wrapped))
    assert result.returncode == 0, result.stderr
    result = _age("-d", "-i", str(identity), str(obj))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"wal bytes"


def test_age_cli_wrong_identity_and_pgvault_wrong_identity_agree(tmp_path: Path) -> None:
    sealed = encrypt_bytes(b"x", [generate_identity().recipient()])
    other = generate_identity()
    key = _write(tmp_path / "other.txt", format_identity_file([other]))
    obj = _write(tmp_path / "obj.age", sealed)
    assert _age("-d", "-i", str(key), str(obj)).returncode == 1
    with pytest.raises(DecryptionFailed, match=r"obj\.age: none of the 1 key"):
        decrypt_bytes(sealed, [other], "obj.age")
