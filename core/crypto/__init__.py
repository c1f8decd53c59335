"""Client-side encryption in the age v1 format (age-encryption.org), readable by `age -d`.

Writers encrypt to `KeyFile.recipient`; readers unlock the key file once per process and
pass `UnlockedKeys.identities` to `DecryptingReader`.
"""

from core.crypto.keyfile import (
    Generation,
    KeyFile,
    UnlockedKeys,
    create_keyfile,
    export_keys,
    parse_keyfile,
    rewrap,
    rotate,
    serialize_keyfile,
    unlock,
    unlock_exported,
)
from core.crypto.keys import (
    Passphrase,
    X25519Identity,
    X25519Recipient,
    format_identity_file,
    generate_identity,
    parse_identity,
    parse_identity_file,
    parse_recipient,
)
from core.crypto.passphrase import passphrase_from_env, read_identity_file, read_passphrase_file
from core.crypto.stanzas import Identity, Recipient
from core.crypto.stream import DecryptingReader, EncryptingWriter, decrypt_bytes, encrypt_bytes

__all__ = [
    "DecryptingReader",
    "EncryptingWriter",
    "Generation",
    "Identity",
    "KeyFile",
    "Passphrase",
    "Recipient",
    "UnlockedKeys",
    "X25519Identity",
    "X25519Recipient",
    "create_keyfile",
    "decrypt_bytes",
    "encrypt_bytes",
    "export_keys",
    "format_identity_file",
    "generate_identity",
    "parse_identity",
    "parse_identity_file",
    "parse_keyfile",
    "parse_recipient",
    "passphrase_from_env",
    "read_identity_file",
    "read_passphrase_file",
    "rewrap",
    "rotate",
    "serialize_keyfile",
    "unlock",
    "unlock_exported",
]
