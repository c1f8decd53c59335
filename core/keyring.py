"""Key management of a server's key file in the store: create, show, rotate, rewrap.

rewrap changes the ways to unwrap in one go; rotate-passphrase, add-recipient and
remove-recipient are its single changes under the names the encryption issue gives them.

Each change rewrites only `<server>/pgvault.keys`; no object is re-encrypted. A change is
a `KeysRequest`, run as a `keys` job (core.keyjob) whose record says what changed
(recipients and generations, never a secret).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.catalog.layout import validate_server_name
from core.catalog.lock import short_lock
from core.crypto import (
    KeyFile,
    Passphrase,
    X25519Identity,
    X25519Recipient,
    create_keyfile,
    parse_recipient,
    rewrap,
    rotate,
    unlock,
)
from core.crypto.keyfile import PASSPHRASE, RECIPIENTS
from core.encryption import keyfile_key, load_keyfile, save_keyfile
from core.errors import InputError, ObjectExists
from core.secrets import register_secret
from core.storage import ObjectStore, PutOptions, StoreConfig
from core.urls import Location

#: the key changes; `show` writes nothing and is no job
ACTIONS = ("init", "rotate", "rewrap", "rotate-passphrase", "add-recipient", "remove-recipient")
#: the single changes of rewrap, each with the one input it needs (a tui flag names it)
NEEDS = {
    "rotate-passphrase": "a new passphrase",
    "add-recipient": "a recipient to add (age1...)",
    "remove-recipient": "a recipient to remove (age1...)",
}
KEYS_LOCK = "pgvault.keys.lock"
#: held for one read, one scrypt and one write: a holder gone this long died
KEYS_LOCK_TTL = 300
#: how long a change waits for another one (each holds it for about one scrypt)
KEYS_LOCK_WAIT = 120.0


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
    return keyfile


@dataclass(frozen=True)
class Unlock:
    """What the operator holds to open the current key file."""

    passphrase: Passphrase | None
    identities: tuple[X25519Identity, ...]


def _changing(store: ObjectStore, server: str, operation: str) -> AbstractContextManager[object]:
    """The key file's lock for one read-change-write: two changes at once would each write
    the file they read, and the first one's new generation would be lost with its objects."""
    return short_lock(store, server, operation, KEYS_LOCK, KEYS_LOCK_TTL, KEYS_LOCK_WAIT)


def rotate_keys(store: ObjectStore, server: str, held: Unlock) -> KeyFile:
    """A new data key for new objects; old objects keep theirs (still in the file)."""
    with _changing(store, server, "keys rotate"):
        return _rotate(store, _existing(store, server), held)


def _rotate(store: ObjectStore, keyfile: KeyFile, held: Unlock) -> KeyFile:
    # The new data key is wrapped for the passphrase given: it must be the one the file
    # has, not one that failed while an identity opened the file (a silent change).
    verify = held.passphrase is not None and keyfile.wrap(PASSPHRASE) is not None
    keys = unlock(keyfile, held.passphrase, () if verify else held.identities)
    rotated, _ = rotate(keyfile, keys, held.passphrase, _now())
    save_keyfile(store, rotated)
    return rotated


@dataclass(frozen=True)
class Rewrap:
    """The new ways to unwrap: a new passphrase or none, and/or new operator recipients."""

    passphrase: Passphrase | None = None
    drop_passphrase: bool = False
    recipients: tuple[X25519Recipient, ...] | None = None  # None keeps the current ones


def rewrap_keys(store: ObjectStore, server: str, held: Unlock, change: Rewrap) -> KeyFile:
    """New wraps of the same keys; losing the last way to unwrap them is refused."""
    with _changing(store, server, "keys rewrap"):
        return _rewrap(store, _existing(store, server), held, change)


def _rewrap(store: ObjectStore, keyfile: KeyFile, held: Unlock, change: Rewrap) -> KeyFile:
    keys = unlock(keyfile, held.passphrase, held.identities)
    changed = rewrap(
        keyfile,
        keys,
        passphrase=change.passphrase,
        drop_passphrase=change.drop_passphrase,
        recipients=change.recipients,
    )
    save_keyfile(store, changed)
    return changed


@dataclass(frozen=True)
class KeysRequest:
    """One change of a server's key file. The secrets reach the job's run in this process,
    or a detached job's process through its pipe (never argv, its environment or the store):
    `public()` removes them before the job is recorded."""

    action: str  # one of ACTIONS
    location: Location
    server: str
    store_config: StoreConfig = field(default_factory=StoreConfig)
    #: init: the operator recipients; rewrap: the new ones; add-recipient, remove-recipient:
    #: those added or removed (age1..., public)
    recipients: tuple[str, ...] = ()
    no_recipients: bool = False  # rewrap: remove the operator recipients
    drop_passphrase: bool = False  # rewrap: remove the passphrase wrap
    #: init: the passphrase to wrap for; rotate, rewrap: the one that unlocks the file
    passphrase: Passphrase | None = field(default=None, repr=False)
    #: rewrap, rotate-passphrase
    new_passphrase: Passphrase | None = field(default=None, repr=False)
    identities: tuple[X25519Identity, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        # A detached job's process rebuilds the request from its pipe: its identities are
        # secrets there too (a passphrase registers itself).
        for identity in self.identities:
            register_secret(identity.secret())

    def public(self) -> KeysRequest:
        """Without a secret, and without the URL's credentials: what the job store keeps."""
        return KeysRequest(
            action=self.action,
            location=self.location.without_credentials(),
            server=self.server,
            store_config=self.store_config,
            recipients=self.recipients,
            no_recipients=self.no_recipients,
            drop_passphrase=self.drop_passphrase,
        )


def validate_request(request: KeysRequest) -> None:
    """Bad input (exit 3), found before the store is touched or a job recorded."""
    if request.action not in ACTIONS:
        raise InputError(f"unknown key change {request.action!r} (one of: {', '.join(ACTIONS)})")
    validate_server_name(request.server)
    for recipient in request.recipients:
        parse_recipient(recipient)
    if request.action in NEEDS:
        given = (
            request.new_passphrase if request.action == "rotate-passphrase" else request.recipients
        )
        if not given:
            raise InputError(f"keys {request.action} needs {NEEDS[request.action]}")
        return
    if request.action != "rewrap":
        return
    if not (
        request.new_passphrase
        or request.drop_passphrase
        or request.recipients
        or request.no_recipients
    ):
        raise InputError(
            "rewrap needs --new-passphrase-file, --drop-passphrase, --encrypt-to or --no-recipients"
        )
    if request.recipients and request.no_recipients:
        raise InputError("--encrypt-to and --no-recipients are mutually exclusive")


def change_keys(store: ObjectStore, request: KeysRequest) -> tuple[KeyFile | None, KeyFile]:
    """Apply the request to the server's key file: the file before (None for init) and after."""
    server = request.server
    recipients = tuple(parse_recipient(r) for r in request.recipients)
    if request.action == "init":
        return None, init_keys(store, server, request.passphrase, recipients)
    held = Unlock(request.passphrase, request.identities)
    with _changing(store, server, f"keys {request.action}"):
        before = _existing(store, server)
        if request.action == "rotate":
            return before, _rotate(store, before, held)
        return before, _rewrap(store, before, held, _rewrap_of(request, before, recipients))


def _rewrap_of(
    request: KeysRequest, keyfile: KeyFile, given: tuple[X25519Recipient, ...]
) -> Rewrap:
    """The rewrap a change asks for; adding a held recipient or removing an absent one is
    bad input (exit 3), so that a typo never reads as done."""
    if request.action == "rotate-passphrase":
        return Rewrap(passphrase=request.new_passphrase)
    wrap = keyfile.wrap(RECIPIENTS)
    current = wrap.recipients if wrap is not None else ()
    held = {str(r) for r in current}
    if request.action == "add-recipient":
        already = [str(r) for r in given if str(r) in held]
        if already:
            raise InputError(f"{already[0]} can already unwrap the keys of server {request.server}")
        return Rewrap(recipients=(*current, *dict.fromkeys(given)))
    if request.action == "remove-recipient":
        absent = [str(r) for r in given if str(r) not in held]
        if absent:
            raise InputError(
                f"{absent[0]} is not a recipient of the keys of server {request.server} "
                "(keys show lists them)"
            )
        removed = {str(r) for r in given}
        return Rewrap(recipients=tuple(r for r in current if str(r) not in removed))
    return Rewrap(
        passphrase=request.new_passphrase,
        drop_passphrase=request.drop_passphrase,
        recipients=() if request.no_recipients else (given or None),
    )


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
