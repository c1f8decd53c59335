"""ASCII armor (strict PEM) for the small age files pgvault keeps in text, like the key file."""

from __future__ import annotations

import base64
import binascii

from core.errors import DecryptionFailed

BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----"
END = "-----END AGE ENCRYPTED FILE-----"
_COLUMNS = 64


def armor(data: bytes) -> str:
    """The armored form of an age file, which `age -d` reads as is."""
    encoded = base64.b64encode(data).decode()
    lines = [encoded[i : i + _COLUMNS] for i in range(0, len(encoded), _COLUMNS)]
    return "\n".join([BEGIN, *lines, END]) + "\n"


def dearmor(text: str, label: str) -> bytes:
    """The binary age file inside an armored block."""
    lines = text.strip().splitlines()
    if len(lines) < 2 or lines[0] != BEGIN or lines[-1] != END:  # noqa: PLR2004 - begin and end lines
        raise DecryptionFailed(f"{label}: the armored age block is malformed")
    body = lines[1:-1]
    if any(len(line) > _COLUMNS for line in body) or any(len(ln) != _COLUMNS for ln in body[:-1]):
        raise DecryptionFailed(f"{label}: the armored age block is malformed")
    try:
        return base64.b64decode("".join(body), validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionFailed(f"{label}: the armored age block is malformed") from None
