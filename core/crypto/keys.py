"""age X25519 identities and recipients, and passphrases: the keys pgvault holds.

An identity's secret string and a passphrase are registered with core.secrets as soon as they
exist, so no message, log line or traceback pgvault renders can show them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.crypto.bech32 import decode as bech32_decode
from core.crypto.bech32 import encode as bech32_encode
from core.errors import InputError
from core.secrets import register_secret

if TYPE_CHECKING:  # imported where used: see core.crypto.header.hkdf
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey,
        X25519PublicKey,
    )

RECIPIENT_HRP = "age"
IDENTITY_HRP = "age-secret-key-"
KEY_SIZE = 32
# Go age caps the scrypt work factor it accepts at 2^22; pgvault writes 2^18 as Go age does.
DEFAULT_LOG_N = 18
MAX_LOG_N = 22


@dataclass(frozen=True)
class X25519Recipient:
    """A public key `age1...`: anyone holding it can encrypt, only the identity decrypts."""

    public: bytes

    def __str__(self) -> str:
        return bech32_encode(RECIPIENT_HRP, self.public)

    def key(self) -> X25519PublicKey:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

        return X25519PublicKey.from_public_bytes(self.public)


@dataclass(frozen=True)
class X25519Identity:
    """A secret key `AGE-SECRET-KEY-1...`; repr and str never show it (use secret())."""

    private: bytes = field(repr=False)

    def __str__(self) -> str:
        return f"X25519Identity({self.recipient()})"

    def secret(self) -> str:
        """The identity as age writes it in an identity file."""
        return bech32_encode(IDENTITY_HRP, self.private).upper()

    def key(self) -> X25519PrivateKey:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        return X25519PrivateKey.from_private_bytes(self.private)

    def recipient(self) -> X25519Recipient:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return X25519Recipient(self.key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


@dataclass(frozen=True)
class Passphrase:
    """A passphrase that wraps a file key through scrypt; repr never shows it."""

    value: str = field(repr=False)
    log_n: int = DEFAULT_LOG_N

    def __post_init__(self) -> None:
        register_secret(self.value)
        if not self.value:
            raise InputError("the passphrase is empty")
        if not 1 <= self.log_n <= MAX_LOG_N:
            raise InputError(f"the scrypt work factor must be 2^1 to 2^{MAX_LOG_N}")


def generate_identity() -> X25519Identity:
    """A fresh X25519 identity (its secret string is registered as a secret)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    raw = X25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    identity = X25519Identity(raw)
    register_secret(identity.secret())
    return identity


def parse_recipient(text: str) -> X25519Recipient:
    """An `age1...` recipient; InputError for any other format."""
    hrp, data = bech32_decode(text.strip(), "the recipient")
    if hrp != RECIPIENT_HRP or len(data) != KEY_SIZE:
        raise InputError(f"unknown recipient format (expected an X25519 age1... key): {text!r}")
    return X25519Recipient(data)


def parse_identity(text: str) -> X25519Identity:
    """An `AGE-SECRET-KEY-1...` identity; the error never repeats the text."""
    text = text.strip()
    register_secret(text)
    if not text.startswith("AGE-SECRET-KEY-1"):
        raise InputError("unknown identity format (expected AGE-SECRET-KEY-1...)")
    hrp, data = bech32_decode(text, "the identity")
    if hrp != IDENTITY_HRP or len(data) != KEY_SIZE:
        raise InputError("unknown identity format (expected AGE-SECRET-KEY-1...)")
    return X25519Identity(data)


def parse_identity_file(text: str) -> tuple[X25519Identity, ...]:
    """Every identity of an age identity file (comments and blank lines skipped)."""
    identities = tuple(
        parse_identity(line)
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    if not identities:
        raise InputError("the identity file holds no AGE-SECRET-KEY-1... line")
    return identities


def format_identity_file(identities: Iterable[X25519Identity], comments: Iterable[str] = ()) -> str:
    """An identity file age -i reads: comment lines, then each key under its public key."""
    lines = [f"# {comment}" for comment in comments]
    for identity in identities:
        lines += [f"# public key: {identity.recipient()}", identity.secret()]
    return "\n".join(lines) + "\n"
