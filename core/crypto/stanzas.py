"""Wrapping a file key for a recipient, and unwrapping it with an identity (X25519, scrypt)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from core.crypto.header import Stanza, b64decode, b64encode, hkdf
from core.crypto.keys import KEY_SIZE, MAX_LOG_N, Passphrase, X25519Identity, X25519Recipient
from core.errors import DecryptionFailed

if TYPE_CHECKING:  # imported where used: see core.crypto.header.hkdf
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey,
        X25519PublicKey,
    )

Recipient = X25519Recipient | Passphrase
Identity = X25519Identity | Passphrase

FILE_KEY_SIZE = 16
_ZERO_NONCE = bytes(12)
_X25519_INFO = b"age-encryption.org/v1/X25519"
_SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
_SALT_SIZE = 16
_WRAPPED_SIZE = FILE_KEY_SIZE + 16


def _seal(key: bytes, file_key: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    return ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, file_key, None)


def _open(key: bytes, body: bytes) -> bytes | None:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    try:
        return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None


def _shared(private: X25519PrivateKey, public: X25519PublicKey, label: str) -> bytes:
    try:
        secret = private.exchange(public)
    except ValueError:
        secret = bytes(KEY_SIZE)
    if secret == bytes(KEY_SIZE):
        raise DecryptionFailed(f"{label}: an X25519 stanza has a low-order share")
    return secret


def _scrypt(passphrase: Passphrase, salt: bytes, log_n: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    kdf = Scrypt(salt=_SCRYPT_LABEL + salt, length=32, n=1 << log_n, r=8, p=1)
    return kdf.derive(passphrase.value.encode())


def wrap(file_key: bytes, recipient: Recipient) -> Stanza:
    """The stanza that lets the recipient's identity recover file_key."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if isinstance(recipient, Passphrase):
        salt = os.urandom(_SALT_SIZE)
        key = _scrypt(recipient, salt, recipient.log_n)
        return Stanza(
            "scrypt", (b64encode(salt).decode(), str(recipient.log_n)), _seal(key, file_key)
        )
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    secret = _shared(ephemeral, recipient.key(), "encrypting")
    key = hkdf(secret, share + recipient.public, _X25519_INFO)
    return Stanza("X25519", (b64encode(share).decode(),), _seal(key, file_key))


def unwrap(stanza: Stanza, identity: Identity, label: str) -> bytes | None:
    """The file key if this stanza is for this identity, else None; malformed stanzas raise."""
    if stanza.kind == "X25519" and isinstance(identity, X25519Identity):
        return _unwrap_x25519(stanza, identity, label)
    if stanza.kind == "scrypt" and isinstance(identity, Passphrase):
        return _unwrap_scrypt(stanza, identity, label)
    return None


def _unwrap_x25519(stanza: Stanza, identity: X25519Identity, label: str) -> bytes | None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    if len(stanza.args) != 1 or len(stanza.body) != _WRAPPED_SIZE:
        raise DecryptionFailed(f"{label}: the age header has a malformed X25519 stanza")
    share = b64decode(stanza.args[0].encode(), "X25519 share", label)
    if len(share) != KEY_SIZE:
        raise DecryptionFailed(f"{label}: the age header has a malformed X25519 stanza")
    secret = _shared(identity.key(), X25519PublicKey.from_public_bytes(share), label)
    key = hkdf(secret, share + identity.recipient().public, _X25519_INFO)
    return _open(key, stanza.body)


def _unwrap_scrypt(stanza: Stanza, passphrase: Passphrase, label: str) -> bytes | None:
    if len(stanza.args) != 2 or len(stanza.body) != _WRAPPED_SIZE:  # noqa: PLR2004 - salt, logN
        raise DecryptionFailed(f"{label}: the age header has a malformed scrypt stanza")
    salt = b64decode(stanza.args[0].encode(), "scrypt salt", label)
    text = stanza.args[1]
    if len(salt) != _SALT_SIZE or not text.isdigit() or text != str(int(text)):
        raise DecryptionFailed(f"{label}: the age header has a malformed scrypt stanza")
    log_n = int(text)
    if not 1 <= log_n <= MAX_LOG_N:
        raise DecryptionFailed(
            f"{label}: the scrypt work factor 2^{log_n} is above the accepted 2^{MAX_LOG_N}"
        )
    return _open(_scrypt(passphrase, salt, log_n), stanza.body)
