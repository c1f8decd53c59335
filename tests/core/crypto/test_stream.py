"""age v1 streams: round trips, chunk boundaries, and every changed or missing byte detected."""

from __future__ import annotations

import io
import os
import threading

import pytest

from core.crypto import (
    DecryptingReader,
    EncryptingWriter,
    Passphrase,
    decrypt_bytes,
    encrypt_bytes,
    generate_identity,
    parse_identity,
    parse_recipient,
)
from core.crypto.header import Stanza, serialize_header
from core.crypto.stanzas import wrap
from core.crypto.stream import CHUNK
from core.encryption import SealBuffers
from core.errors import DecryptionFailed, ExitCode, InputError, OperationFailed

SIZES = [0, 1, 65535, 65536, 65537, 200000]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(size: int) -> None:
    identity = generate_identity()
    data = os.urandom(size)
    sealed = encrypt_bytes(data, [identity.recipient()])
    assert decrypt_bytes(sealed, [identity]) == data
    chunks = max(1, -(-size // CHUNK))
    header_end = sealed.index(b"\n---") + 1
    header_end = sealed.index(b"\n", header_end) + 1
    assert len(sealed) == header_end + 16 + size + 16 * chunks


def test_sealing_into_reused_buffers_gives_the_same_files() -> None:
    identity = generate_identity()
    buffers = SealBuffers()
    big = os.urandom(3 * CHUNK + 5)
    first = encrypt_bytes(big, [identity.recipient()], buffers)
    assert decrypt_bytes(bytes(first), [identity]) == big
    # A smaller object after it: sealed into the same buffer, returned as a view of its start.
    second = encrypt_bytes(b"history file", [identity.recipient()], buffers)
    assert isinstance(second, memoryview) and second.obj is buffers(1)
    assert decrypt_bytes(bytes(second), [identity]) == b"history file"
    elsewhere: list[bytearray] = []
    thread = threading.Thread(target=lambda: elsewhere.append(buffers(1)))
    thread.start()
    thread.join()
    assert elsewhere[0] is not buffers(1)  # one buffer per thread


def test_streaming_in_odd_pieces_both_ways() -> None:
    identity = generate_identity()
    data = os.urandom(3 * CHUNK + 123)
    sink = io.BytesIO()
    writer = EncryptingWriter(sink, [identity.recipient()])
    for start in range(0, len(data), 7777):
        writer.write(memoryview(data)[start : start + 7777])
    writer.close()
    assert writer.bytes_in == len(data) and writer.bytes_out == len(sink.getvalue())
    reader = DecryptingReader(io.BytesIO(sink.getvalue()), [identity], "obj")
    got = bytearray()
    while piece := reader.read(1000):
        got += piece
    assert bytes(got) == data
    assert reader.read(10) == b""


def test_several_recipients_and_generations() -> None:
    old, new, other = generate_identity(), generate_identity(), generate_identity()
    sealed = encrypt_bytes(b"payload", [other.recipient(), old.recipient()])
    assert decrypt_bytes(sealed, [new, old]) == b"payload"
    with pytest.raises(DecryptionFailed, match="none of the 1 key"):
        decrypt_bytes(sealed, [new], "base/x/data.tar")


def _sealed(size: int) -> tuple[bytes, object]:
    identity = generate_identity()
    return encrypt_bytes(os.urandom(size), [identity.recipient()]), identity


@pytest.mark.parametrize("cut", [1, 16, 17, 65536 + 16, 65536 + 32])
def test_truncation_is_detected(cut: int) -> None:
    identity = generate_identity()
    sealed = encrypt_bytes(os.urandom(200000), [identity.recipient()])
    with pytest.raises(DecryptionFailed, match="wal/000000010000000000000001 is truncated"):
        decrypt_bytes(sealed[:-cut], [identity], "wal/000000010000000000000001")


def test_truncation_at_a_chunk_boundary_is_detected() -> None:
    identity = generate_identity()
    sealed = encrypt_bytes(os.urandom(2 * CHUNK + 5), [identity.recipient()])
    with pytest.raises(DecryptionFailed, match="truncated"):
        decrypt_bytes(sealed[: -(5 + 16)], [identity], "obj")


def test_a_flipped_byte_anywhere_is_detected() -> None:
    identity = generate_identity()
    sealed = encrypt_bytes(os.urandom(3 * CHUNK), [identity.recipient()])
    header_len = sealed.index(b"\n", sealed.index(b"\n---") + 1) + 1
    for offset in (30, header_len - 5, header_len + 3, header_len + 16 + 5, len(sealed) - 1):
        changed = bytearray(sealed)
        changed[offset] ^= 0x01
        with pytest.raises(DecryptionFailed) as info:
            decrypt_bytes(bytes(changed), [identity], "base/b1/data.tar.gz.age")
        assert "base/b1/data.tar.gz.age" in str(info.value)


@pytest.mark.parametrize("size", [10, CHUNK])
def test_bytes_after_the_last_chunk_are_refused(size: int) -> None:
    identity = generate_identity()
    sealed = encrypt_bytes(os.urandom(size), [identity.recipient()])
    with pytest.raises(DecryptionFailed, match=r"obj .*chunk 0"):
        decrypt_bytes(sealed + b"extra", [identity], "obj")


def test_a_changed_middle_chunk_names_it() -> None:
    identity = generate_identity()
    sealed = bytearray(encrypt_bytes(os.urandom(3 * CHUNK), [identity.recipient()]))
    sealed[-(CHUNK + 16) - 100] ^= 0xFF
    with pytest.raises(DecryptionFailed, match="was modified: chunk 1"):
        decrypt_bytes(bytes(sealed), [identity], "obj")


def test_decryption_failure_is_an_operation_failure_without_context() -> None:
    identity = generate_identity()
    sealed = encrypt_bytes(b"x", [identity.recipient()])
    with pytest.raises(DecryptionFailed) as info:
        decrypt_bytes(sealed[:-1], [identity], "obj")
    assert isinstance(info.value, OperationFailed)
    assert info.value.exit_code == ExitCode.FAILED
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    assert identity.secret() not in str(info.value)


def test_not_age_and_no_keys() -> None:
    with pytest.raises(DecryptionFailed, match="obj is not an age v1 encrypted file"):
        decrypt_bytes(b"\x1f\x8b plain gzip", [generate_identity()], "obj")
    sealed, _ = _sealed(10)
    with pytest.raises(DecryptionFailed, match="no key was given"):
        decrypt_bytes(sealed, [], "obj")


def test_passphrase_round_trip_and_wrong_passphrase() -> None:
    secret = "a passphrase nobody guesses"
    sealed = encrypt_bytes(b"identity", [Passphrase(secret, log_n=10)])
    assert decrypt_bytes(sealed, [Passphrase(secret)]) == b"identity"
    with pytest.raises(DecryptionFailed, match="the passphrase is wrong") as info:
        decrypt_bytes(sealed, [Passphrase("not it at all")], "keys")
    assert secret not in str(info.value) and "not it at all" not in str(info.value)


def test_scrypt_must_be_the_only_stanza() -> None:
    passphrase, identity = Passphrase("pass-word", log_n=10), generate_identity()
    with pytest.raises(InputError, match="only recipient"):
        encrypt_bytes(b"x", [passphrase, identity.recipient()])
    file_key = os.urandom(16)
    stanzas = [wrap(file_key, passphrase), wrap(file_key, identity.recipient())]
    forged = serialize_header(stanzas, file_key) + os.urandom(40)
    with pytest.raises(DecryptionFailed, match="must be the only one"):
        decrypt_bytes(forged, [identity], "obj")


def test_scrypt_work_factor_is_capped() -> None:
    file_key = os.urandom(16)
    stanza = wrap(file_key, Passphrase("pass-word", log_n=10))
    greedy = Stanza("scrypt", (stanza.args[0], "23"), stanza.body)
    with pytest.raises(DecryptionFailed, match="2\\^23 is above"):
        decrypt_bytes(serialize_header([greedy], file_key), [Passphrase("pass-word")], "k")


def test_unknown_stanzas_are_skipped() -> None:
    identity = generate_identity()
    file_key = os.urandom(16)
    grease = Stanza("grease-x", ("a", "b"), os.urandom(64))
    header = serialize_header([grease, wrap(file_key, identity.recipient())], file_key)
    with pytest.raises(DecryptionFailed, match="truncated"):
        decrypt_bytes(header, [identity], "obj")  # the key opened; only the payload is missing


def test_failed_block_leaves_the_stream_unsealed() -> None:
    identity = generate_identity()
    sink = io.BytesIO()
    with pytest.raises(RuntimeError), EncryptingWriter(sink, [identity.recipient()]) as writer:
        writer.write(b"partial")
        raise RuntimeError("compressor failed")
    with pytest.raises(DecryptionFailed, match="truncated"):
        decrypt_bytes(sink.getvalue(), [identity], "obj")


def other_last(key: str) -> str:
    """The key with another last character (of its case): its bech32 checksum fails. A fixed
    replacement would leave one key in 32 unchanged."""
    last = key[-1]
    swap = "p" if last.lower() == "q" else "q"
    return key[:-1] + (swap.upper() if last.isupper() else swap)


def test_keys_parse_and_print() -> None:
    identity = generate_identity()
    assert parse_identity(identity.secret()) == identity
    assert parse_recipient(str(identity.recipient())) == identity.recipient()
    assert identity.secret() not in repr(identity) and identity.secret() not in str(identity)
    assert identity.secret().startswith("AGE-SECRET-KEY-1")
    assert str(identity.recipient()).startswith("age1") and len(str(identity.recipient())) == 62
    for bad in ("ssh-ed25519 AAAA", "age1qqqq", other_last(str(identity.recipient()))):
        with pytest.raises(InputError):
            parse_recipient(bad)
    with pytest.raises(InputError) as info:
        parse_identity(other_last(identity.secret()))
    assert identity.secret()[:20] not in str(info.value)
