"""The age v1 header: stanzas and the MAC line, serialised and parsed strictly."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256

from core.errors import DecryptionFailed

VERSION_LINE = b"age-encryption.org/v1\n"
ARMOR_BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
_COLUMNS = 64
_MAC_SIZE = 32
# A header is a few hundred bytes; bound what a hostile object can make us buffer.
MAX_LINE = 4096
MAX_STANZAS = 64


@dataclass(frozen=True)
class Stanza:
    """One `-> TYPE ARGS` recipient stanza and its body."""

    kind: str
    args: tuple[str, ...]
    body: bytes

    def serialize(self) -> bytes:
        encoded = b64encode(self.body)
        lines = [encoded[i : i + _COLUMNS] for i in range(0, len(encoded), _COLUMNS)]
        if not lines or len(lines[-1]) == _COLUMNS:
            lines.append(b"")  # the body ends with a line shorter than 64 columns
        head = " ".join(("->", self.kind, *self.args)).encode()
        return b"\n".join([head, *lines]) + b"\n"


@dataclass(frozen=True)
class Header:
    """The stanzas of an age file and the header bytes its MAC covers."""

    stanzas: tuple[Stanza, ...]
    mac: bytes
    covered: bytes


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA-256 to 32 bytes, as every age key derivation uses."""
    # cryptography is imported where it is used (here and in keys, stanzas, stream): an
    # unencrypted backup or restore never loads it (about 7 MB of resident memory).
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=SHA256(), length=32, salt=salt, info=info).derive(ikm)


def b64encode(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def b64decode(text: bytes, what: str, label: str) -> bytes:
    """Canonical unpadded base64, as the age spec requires; anything else is refused."""
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        data = None
    if data is None or b64encode(data) != text:
        raise DecryptionFailed(f"{label}: the age header has a malformed {what}")
    return data


def header_mac(file_key: bytes, covered: bytes) -> bytes:
    return hmac.new(hkdf(file_key, b"", b"header"), covered, sha256).digest()


def serialize_header(stanzas: list[Stanza], file_key: bytes) -> bytes:
    """The full header, MAC line included."""
    covered = VERSION_LINE + b"".join(s.serialize() for s in stanzas) + b"---"
    return covered + b" " + b64encode(header_mac(file_key, covered)) + b"\n"


def verify_mac(header: Header, file_key: bytes, label: str) -> None:
    if not hmac.compare_digest(header_mac(file_key, header.covered), header.mac):
        raise DecryptionFailed(f"{label}: the age header was modified (bad header MAC)")


def parse_header(readline: Callable[[], bytes], label: str) -> Header:
    """Read the header line by line (readline returns one line with its newline, or less)."""
    first = readline()
    if first != VERSION_LINE:
        if first.startswith(ARMOR_BEGIN):
            raise DecryptionFailed(f"{label} is ASCII-armored; pgvault reads binary age files")
        raise DecryptionFailed(f"{label} is not an age v1 encrypted file")
    covered = bytearray(first)
    stanzas: list[Stanza] = []
    while True:
        line = _line(readline(), label)
        if line.startswith(b"--- "):
            covered += b"---"
            mac = b64decode(line[4:-1], "MAC", label)
            if len(mac) != _MAC_SIZE or not stanzas:
                raise DecryptionFailed(f"{label}: the age header is malformed")
            return Header(tuple(stanzas), mac, bytes(covered))
        covered += line
        if not line.startswith(b"-> ") or len(stanzas) >= MAX_STANZAS:
            raise DecryptionFailed(f"{label}: the age header is malformed")
        stanzas.append(_stanza(line, readline, covered, label))


def _line(line: bytes, label: str) -> bytes:
    if not line.endswith(b"\n"):
        raise DecryptionFailed(f"{label}: the age header is truncated or malformed")
    return line


def _stanza(line: bytes, readline: Callable[[], bytes], covered: bytearray, label: str) -> Stanza:
    words = line[3:-1].split(b" ")
    if not words or any(not w or not all(33 <= c <= 126 for c in w) for w in words):  # noqa: PLR2004 - visible ASCII
        raise DecryptionFailed(f"{label}: the age header has a malformed stanza")
    body = bytearray()
    while True:
        row = _line(readline(), label)
        covered += row
        if len(row) - 1 > _COLUMNS:
            raise DecryptionFailed(f"{label}: the age header has a malformed stanza body")
        body += b64decode(row[:-1], "stanza body", label)
        if len(row) - 1 < _COLUMNS:
            return Stanza(words[0].decode(), tuple(w.decode() for w in words[1:]), bytes(body))
