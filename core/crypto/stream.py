"""age v1 payload streams: an encrypting writer over any binary sink and a decrypting reader
over any binary source, one 64 KiB chunk in memory at a time.

The payload is STREAM: ChaCha20-Poly1305 over 64 KiB chunks, the nonce an 11-byte counter
and a last-chunk flag, so a truncated object fails on its last chunk and a changed byte
fails on the chunk that holds it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from core.crypto.header import MAX_LINE, Header, hkdf, parse_header, serialize_header, verify_mac
from core.crypto.keys import Passphrase
from core.crypto.stanzas import FILE_KEY_SIZE, Identity, Recipient, unwrap, wrap
from core.errors import DecryptionFailed, InputError

CHUNK = 64 * 1024
TAG = 16
NONCE_SIZE = 16
_SEALED = CHUNK + TAG
_LAST = b"\x01"
_MORE = b"\x00"


class BinarySink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class BinarySource(Protocol):
    def read(self, size: int, /) -> bytes | None: ...


if TYPE_CHECKING:  # imported where used: see core.crypto.header.hkdf
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305


def _aead(key: bytes) -> ChaCha20Poly1305:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    return ChaCha20Poly1305(key)


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (_LAST if last else _MORE)


def _check_recipients(recipients: Sequence[Recipient]) -> None:
    if not recipients:
        raise InputError("encryption needs at least one recipient")
    if len(recipients) > 1 and any(isinstance(r, Passphrase) for r in recipients):
        raise InputError("a passphrase must be the only recipient of an age file")


def _start(recipients: Sequence[Recipient]) -> tuple[bytes, ChaCha20Poly1305]:
    """A new file key: the header and payload nonce that start the file, and its cipher."""
    _check_recipients(recipients)
    file_key = os.urandom(FILE_KEY_SIZE)
    nonce = os.urandom(NONCE_SIZE)
    header = serialize_header([wrap(file_key, r) for r in recipients], file_key)
    return header + nonce, _aead(hkdf(file_key, nonce, b"payload"))


class EncryptingWriter:
    """Writes an age v1 file to sink: write() plaintext, close() seals the last chunk.

    The header goes out at construction. close() does not close the sink unless close_sink
    is set, so the caller can still complete (or abort) an upload. Leaving a `with` block on
    an exception does not seal the stream: what reached the sink then fails as truncated.
    """

    def __init__(
        self, sink: BinarySink, recipients: Sequence[Recipient], *, close_sink: bool = False
    ) -> None:
        start, self._aead = _start(recipients)
        self._sink = sink
        self._buffer = bytearray()
        self._counter = 0
        self._close_sink = close_sink
        self.closed = False
        self.bytes_in = 0
        self.bytes_out = len(start)
        sink.write(start)

    def __enter__(self) -> EncryptingWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.closed = True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self.closed:
            raise ValueError("write to a closed EncryptingWriter")
        view = memoryview(data).cast("B")
        size = len(view)
        self.bytes_in += size
        # A full chunk waits until more data arrives: only then is it known not to be last.
        if self._buffer:
            room = CHUNK - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if not view:
                return size
            self._seal(self._buffer, last=False)
            self._buffer = bytearray()
        while len(view) > CHUNK:
            self._seal(view[:CHUNK], last=False)
            view = view[CHUNK:]
        self._buffer += view
        return size

    def close(self) -> None:
        """Seal the last chunk (possibly short; empty only for an empty payload)."""
        if self.closed:
            return
        self._seal(self._buffer, last=True)
        self._buffer = bytearray()
        self.closed = True
        if self._close_sink:
            getattr(self._sink, "close", lambda: None)()

    def _seal(self, chunk: bytes | bytearray | memoryview, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._counter, last), chunk, None)
        self._counter += 1
        self.bytes_out += len(sealed)
        self._sink.write(sealed)


class _Source:
    """A source read by header lines first, then in exact-sized pieces."""

    def __init__(self, raw: BinarySource) -> None:
        self._raw = raw
        self._buffer = bytearray()

    def _more(self, size: int) -> bool:
        data = self._raw.read(size)
        if not data:
            return False
        self._buffer += data
        return True

    def readline(self) -> bytes:
        while b"\n" not in self._buffer and len(self._buffer) < MAX_LINE and self._more(4096):
            pass
        end = self._buffer.find(b"\n", 0, MAX_LINE) + 1 or min(len(self._buffer), MAX_LINE)
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        return line

    def read(self, size: int) -> bytes:
        """size bytes, fewer only at the end of the source."""
        if not self._buffer:
            data = self._raw.read(size) or b""
            if len(data) == size or not data:
                return data
            self._buffer += data
        while len(self._buffer) < size and self._more(size - len(self._buffer)):
            pass
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out


def _file_key(header: Header, identities: Sequence[Identity], label: str) -> bytes:
    kinds = {s.kind for s in header.stanzas}
    if "scrypt" in kinds and len(header.stanzas) > 1:
        raise DecryptionFailed(f"{label}: a passphrase stanza must be the only one (refused)")
    if not identities:
        raise DecryptionFailed(f"{label} is encrypted and no key was given to open it")
    for stanza in header.stanzas:
        for identity in identities:
            file_key = unwrap(stanza, identity, label)
            if file_key is not None:
                verify_mac(header, file_key, label)
                return file_key
    if kinds == {"scrypt"}:
        raise DecryptionFailed(f"{label}: the passphrase is wrong")
    raise DecryptionFailed(
        f"{label}: none of the {len(identities)} key(s) held opens it "
        "(a wrong identity, or a key file of another server)"
    )


class DecryptingReader(io.RawIOBase):
    """Reads the plaintext of an age v1 file from source; every failure is DecryptionFailed.

    The header is read and the file key found at construction, so a wrong key fails before
    anything is written. label names the object in messages (keys never appear).
    """

    def __init__(
        self, source: BinarySource, identities: Sequence[Identity], label: str = "encrypted data"
    ) -> None:
        super().__init__()
        self._source = _Source(source)
        self._label = label
        file_key = _file_key(parse_header(self._source.readline, label), identities, label)
        nonce = self._source.read(NONCE_SIZE)
        if len(nonce) != NONCE_SIZE:
            raise DecryptionFailed(f"{label} is truncated (it ends inside the payload nonce)")
        self._aead = _aead(hkdf(file_key, nonce, b"payload"))
        from cryptography.exceptions import InvalidTag  # once, not per chunk

        self._invalid_tag = InvalidTag
        self._plain = b""
        self._counter = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._plain]
            while self._next_chunk():
                parts.append(self._plain)
            self._plain = b""
            return b"".join(parts)
        while not self._plain and self._next_chunk():
            pass
        out, self._plain = self._plain[:size], self._plain[size:]
        return out

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _next_chunk(self) -> bool:
        """Decrypt the next chunk into _plain; False once the last one was read."""
        if self._done:
            return False
        sealed = self._source.read(_SEALED)
        index = self._counter
        short = len(sealed) < _SEALED
        if short and (len(sealed) < TAG or (len(sealed) == TAG and index > 0)):
            raise DecryptionFailed(f"{self._label} is truncated (it ends at chunk {index})")
        # A full chunk is the last one only if its flag says so (tried second: it is rare).
        for last in (True,) if short else (False, True):
            try:
                self._plain = self._aead.decrypt(_nonce(index, last), sealed, None)
            except self._invalid_tag:
                continue
            if last and not short and self._source.read(1):
                break  # data after the last chunk
            self._counter += 1
            self._done = last
            return True
        what = "is truncated or was modified" if short else "was modified"
        raise DecryptionFailed(
            f"{self._label} {what}: chunk {index} (at payload byte {index * CHUNK}) "
            "fails authentication"
        )


def encrypt_bytes(
    data: bytes | bytearray | memoryview,
    recipients: Sequence[Recipient],
    buffer: Callable[[int], bytearray] = bytearray,
) -> bytearray | memoryview:
    """The age v1 file of data for these recipients (as EncryptingWriter writes it), sealed
    into buffer(size): a view of its first size bytes when it returns a larger one."""
    # Sealed in place into one buffer of the final size: a WAL segment is 16 MiB, and growing
    # a BytesIO chunk by chunk cost twice the cipher's own time, a final bytes() copy of it
    # half as much again (issue 16's WAL rate). A caller sealing many (the WAL pusher) passes
    # a buffer it reuses: a fresh one costs page faults and zeroing, as much as the cipher.
    start, aead = _start(recipients)
    view = memoryview(data).cast("B")
    chunks = max(1, -(-len(view) // CHUNK))
    size = len(start) + len(view) + chunks * TAG
    out = buffer(size)
    out[: len(start)] = start
    target = memoryview(out)
    at = len(start)
    for index in range(chunks):
        chunk = view[index * CHUNK : (index + 1) * CHUNK]
        end = at + len(chunk) + TAG
        aead.encrypt_into(_nonce(index, index == chunks - 1), chunk, None, target[at:end])
        at = end
    if len(out) == size:
        target.release()
        return out
    return target[:size]


def decrypt_bytes(
    data: bytes, identities: Sequence[Identity], label: str = "encrypted data"
) -> bytes:
    """The plaintext of a whole age v1 file."""
    return DecryptingReader(io.BytesIO(data), identities, label).read()
