"""Key management of a server's key file in the store: create, show, rotate, rewrap.

Each change rewrites only `<server>/pgvault.keys`; no object is re-encrypted. The operations
log what changed (recipients and generations, never a secret).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from core.crypto import (
    KeyFile,
    Passphrase,
    X25519Identity,
    X25519Recipient,
    create_keyfile,
    rewrap,
    rotate,
    unlock,
)
from core.encryption import keyfile_key, load_keyfile, save_keyfile
from core.errors import InputError, ObjectExists
from core.storage import ObjectStore, PutOptions

log = logging.getLogger("pgvault.keys")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _existing(store: ObjectStore, server: str) -> KeyFile:
    keyfile = load_keyfile(store, server)
    if keyfile is None:
        raise InputError(f"server {server} has no key file ({keyfile_key(server)}): run keys init")
    return keyfile


def init_keys(
    store: ObjectStore,
    server: str,
    passphrase: Passphrase | None,
    recipients: Sequence[X25519Recipient],
) -> KeyFile:
    """A new key file; an existing one is never replaced (its keys may still be needed)."""
    if load_keyfile(store, server) is not None:
        raise ObjectExists(f"server {server} already has a key file ({keyfile_key(server)})")
    keyfile, _ = create_keyfile(server, passphrase, recipients, _now())
    save_keyfile(store, keyfile, PutOptions(if_absent=True))
    log.info("created the key file of server %s: %s", server, describe(keyfile)[0])
    return keyfile


@dataclass(frozen=True)
class Unlock:
    """What the operator holds to open the current key file."""

    passphrase: Passphrase | None
    identities: tuple[X25519Identity, ...]


def rotate_keys(store: ObjectStore, server: str, held: Unlock) -> KeyFile:
    """A new data key for new objects; old objects keep theirs (still in the file)."""
    keyfile = _existing(store, server)
    keys = unlock(keyfile, held.passphrase, held.identities)
    rotated, _ = rotate(keyfile, keys, held.passphrase, _now())
    save_keyfile(store, rotated)
    log.info("server %s: data key generation %d started", server, rotated.generations[-1].number)
    return rotated


@dataclass(frozen=True)
class Rewrap:
    """The new ways to unwrap: a new passphrase or none, and/or new operator recipients."""

    passphrase: Passphrase | None = None
    drop_passphrase: bool = False
    recipients: tuple[X25519Recipient, ...] | None = None  # None keeps the current ones


def rewrap_keys(store: ObjectStore, server: str, held: Unlock, change: Rewrap) -> KeyFile:
    """New wraps of the same keys; losing the last way to unwrap them is refused."""
    keyfile = _existing(store, server)
    keys = unlock(keyfile, held.passphrase, held.identities)
    changed = rewrap(
        keyfile,
        keys,
        passphrase=change.passphrase,
        drop_passphrase=change.drop_passphrase,
        recipients=change.recipients,
    )
    save_keyfile(store, changed)
    log.info("server %s: key file rewrapped (%s)", server, describe(changed)[-1])
    return changed


def show_keys(store: ObjectStore, server: str) -> KeyFile:
    return _existing(store, server)


def describe(keyfile: KeyFile) -> list[str]:
    """The key file in lines: generations and wraps, all public."""
    lines = [
        f"generation {g.number}  created {g.created}  recipient {g.recipient}"
        + ("  (current)" if g is keyfile.generations[-1] else "")
        for g in keyfile.generations
    ]
    wraps = []
    for wrap in keyfile.wraps:
        if wrap.kind == "passphrase":
            wraps.append("passphrase")
        else:
            wraps.append("recipients " + ", ".join(str(r) for r in wrap.recipients))
    lines.append("unlocked by: " + "; ".join(wraps))
    return lines
