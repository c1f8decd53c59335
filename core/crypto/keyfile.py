"""The repository key file of a server: its data recipients in clear, their identities wrapped.

Objects are encrypted to the newest data recipient (one X25519 stanza each, no scrypt). The
identities of every generation form an age identity file, itself age-encrypted ("wrapped")
once to the passphrase and/or once to the operators' recipients, armored in the key file:

    pgvault-keyfile: v1
    server: main
    generation: 1 2026-12-03T14:00:00Z age1...
    wrap: passphrase
    -----BEGIN AGE ENCRYPTED FILE-----
    ...
    -----END AGE ENCRYPTED FILE-----
    wrap: recipients age1...,age1...
    -----BEGIN AGE ENCRYPTED FILE-----
    ...
    -----END AGE ENCRYPTED FILE-----
    mac: ...

Changing the passphrase or the operators rewrites only a wrap; a new generation adds a data
key and keeps the old identities, so every object stays readable with the file unlocked once.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, replace
from hashlib import sha256
from typing import Final, Literal

from core.crypto.armor import BEGIN, END, armor, dearmor
from core.crypto.header import b64decode, b64encode, hkdf
from core.crypto.keys import (
    Passphrase,
    X25519Identity,
    X25519Recipient,
    format_identity_file,
    generate_identity,
    parse_identity_file,
    parse_recipient,
)
from core.crypto.stanzas import Identity, Recipient
from core.crypto.stream import decrypt_bytes, encrypt_bytes
from core.errors import DecryptionFailed, InputError

MAGIC = "pgvault-keyfile: v1"
PASSPHRASE: Final = "passphrase"  # noqa: S105 - the name of a wrap kind, not a secret
RECIPIENTS: Final = "recipients"
_SERVER_COMMENT = "pgvault server: "


@dataclass(frozen=True)
class Generation:
    """One data key: its number, when it was made, and the recipient objects are sealed to."""

    number: int
    created: str
    recipient: X25519Recipient


@dataclass(frozen=True)
class Wrap:
    """The identity file sealed to a passphrase, or to operator recipients (binary age file)."""

    kind: Literal["passphrase", "recipients"]
    recipients: tuple[X25519Recipient, ...]
    sealed: bytes


@dataclass(frozen=True)
class KeyFile:
    """A server's key file as stored; needs no secret to read."""

    server: str
    generations: tuple[Generation, ...]
    wraps: tuple[Wrap, ...]
    # HMAC of the clear lines under a key derived from the newest identity: checked on unlock,
    # so a changed recipient list cannot slip into the next rewrap or rotation.
    mac: bytes = b""

    @property
    def recipient(self) -> X25519Recipient:
        """The recipient new objects are encrypted to (the newest generation)."""
        return self.generations[-1].recipient

    def wrap(self, kind: str) -> Wrap | None:
        return next((w for w in self.wraps if w.kind == kind), None)


@dataclass(frozen=True)
class UnlockedKeys:
    """The identities of every generation, newest first: what reads the server's objects."""

    server: str
    identities: tuple[X25519Identity, ...]

    @property
    def recipient(self) -> X25519Recipient:
        return self.identities[0].recipient()


def _seal(keys: UnlockedKeys, recipients: Sequence[Recipient]) -> bytes:
    return bytes(encrypt_bytes(export_keys(keys).encode(), recipients))


def _clear_lines(keyfile: KeyFile) -> list[str]:
    lines = [MAGIC, f"server: {keyfile.server}"]
    lines += [f"generation: {g.number} {g.created} {g.recipient}" for g in keyfile.generations]
    for wrap in keyfile.wraps:
        names = ",".join(str(r) for r in wrap.recipients)
        lines.append(f"wrap: {wrap.kind}" + (f" {names}" if names else ""))
    return lines


def _mac(keyfile: KeyFile, keys: UnlockedKeys) -> bytes:
    key = hkdf(keys.identities[0].private, b"", b"pgvault-keyfile/v1 mac")
    return hmac.new(key, "\n".join(_clear_lines(keyfile)).encode(), sha256).digest()


def _signed(keyfile: KeyFile, keys: UnlockedKeys) -> KeyFile:
    return replace(keyfile, mac=_mac(keyfile, keys))


def _make_wraps(
    keys: UnlockedKeys, passphrase: Passphrase | None, recipients: Sequence[X25519Recipient]
) -> list[Wrap]:
    wraps = []
    if passphrase is not None:
        wraps.append(Wrap(PASSPHRASE, (), _seal(keys, [passphrase])))
    if recipients:
        wraps.append(Wrap(RECIPIENTS, tuple(recipients), _seal(keys, recipients)))
    return wraps


def create_keyfile(
    server: str,
    passphrase: Passphrase | None,
    recipients: Sequence[X25519Recipient],
    created: str,
) -> tuple[KeyFile, UnlockedKeys]:
    """A new key file with one data key, wrapped for the passphrase and/or the recipients."""
    if passphrase is None and not recipients:
        raise InputError("encryption needs a passphrase or at least one --encrypt-to recipient")
    keys = UnlockedKeys(server, (generate_identity(),))
    generation = Generation(1, created, keys.recipient)
    wraps = _make_wraps(keys, passphrase, recipients)
    return _signed(KeyFile(server, (generation,), tuple(wraps)), keys), keys


def unlock(
    keyfile: KeyFile, passphrase: Passphrase | None = None, identities: Sequence[Identity] = ()
) -> UnlockedKeys:
    """Decrypt the identities once (one scrypt at most); DecryptionFailed says what is missing."""
    label = f"the key file of server {keyfile.server}"
    tries: list[tuple[Wrap, Sequence[Identity]]] = []
    # Identities first: an X25519 unwrap takes microseconds, the passphrase's scrypt a second.
    if identities and (wrap := keyfile.wrap(RECIPIENTS)):
        tries.append((wrap, identities))
    if passphrase is not None and (wrap := keyfile.wrap(PASSPHRASE)):
        tries.append((wrap, [passphrase]))
    if not tries:
        needs = " or ".join(
            "the encryption passphrase (--encryption-passphrase-file or "
            "PGVAULT_ENCRYPTION_PASSPHRASE)"
            if w.kind == PASSPHRASE
            else "an operator identity (--identity-file or PGVAULT_ENCRYPTION_IDENTITY)"
            for w in keyfile.wraps
        )
        raise DecryptionFailed(f"{label} is locked: reading needs {needs}")
    error: DecryptionFailed | None = None
    for wrap, held in tries:
        try:
            text = decrypt_bytes(wrap.sealed, held, label).decode()
        except DecryptionFailed as exc:
            error = exc
            continue
        return _check_unlocked(keyfile, text, label)
    assert error is not None  # noqa: S101 - tries is not empty, so one attempt failed
    raise error


def export_keys(keys: UnlockedKeys) -> str:
    """The unlocked identities as the identity file a wrap seals (for `unlock_exported`)."""
    return format_identity_file(reversed(keys.identities), [f"{_SERVER_COMMENT}{keys.server}"])


def unlock_exported(keyfile: KeyFile, text: str) -> UnlockedKeys:
    """The keys `export_keys` wrote, checked against keyfile as an unwrapped wrap is: the
    same server, the same generations, the MAC. No scrypt: what a restore hands to the
    restore_command it configures, which runs once per WAL file."""
    label = f"the data keys handed for server {keyfile.server}"
    try:
        return _check_unlocked(keyfile, text, label)
    except InputError as exc:  # not an identity file: a damaged credentials file
        raise DecryptionFailed(f"{label} are malformed: {exc}") from None


def _check_unlocked(keyfile: KeyFile, text: str, label: str) -> UnlockedKeys:
    """The identities, which must match the generations and server written in clear."""
    identities = parse_identity_file(text)
    if f"# {_SERVER_COMMENT}{keyfile.server}\n" not in text:
        raise DecryptionFailed(f"{label} holds the keys of another server")
    if [i.recipient() for i in identities] != [g.recipient for g in keyfile.generations]:
        raise DecryptionFailed(f"{label} was modified: its recipients do not match its keys")
    keys = UnlockedKeys(keyfile.server, tuple(reversed(identities)))
    if not hmac.compare_digest(_mac(keyfile, keys), keyfile.mac):
        raise DecryptionFailed(f"{label} was modified: its clear lines do not match its keys")
    return keys


def rewrap(
    keyfile: KeyFile,
    keys: UnlockedKeys,
    *,
    passphrase: Passphrase | None = None,
    drop_passphrase: bool = False,
    recipients: Sequence[X25519Recipient] | None = None,
) -> KeyFile:
    """New wraps, no object rewritten: a new passphrase replaces the old one, drop_passphrase
    removes it; recipients replace the operator recipients (() removes them, None keeps)."""
    keep_pass = passphrase is None and not drop_passphrase
    kept = [
        wrap
        for wrap, keep in (
            (keyfile.wrap(PASSPHRASE), keep_pass),
            (keyfile.wrap(RECIPIENTS), recipients is None),
        )
        if keep and wrap is not None
    ]
    wraps = kept + _make_wraps(keys, passphrase, recipients or ())
    if not wraps:
        raise InputError(
            f"refused: the keys of server {keyfile.server} would be left with no passphrase "
            "and no recipient to unwrap them"
        )
    return _signed(replace(keyfile, wraps=tuple(sorted(wraps, key=lambda w: w.kind))), keys)


def rotate(
    keyfile: KeyFile, keys: UnlockedKeys, passphrase: Passphrase | None, created: str
) -> tuple[KeyFile, UnlockedKeys]:
    """A new data key for new objects; the old ones stay in the file for old objects."""
    if keyfile.wrap(PASSPHRASE) is not None and passphrase is None:
        raise InputError("rotating the data key needs the passphrase, to wrap the new key")
    rotated = UnlockedKeys(keys.server, (generate_identity(), *keys.identities))
    number = keyfile.generations[-1].number + 1
    generations = (*keyfile.generations, Generation(number, created, rotated.recipient))
    rcpt = keyfile.wrap(RECIPIENTS)
    wraps = _make_wraps(rotated, passphrase, rcpt.recipients if rcpt else ())
    changed = replace(keyfile, generations=generations, wraps=tuple(wraps))
    return _signed(changed, rotated), rotated


def serialize_keyfile(keyfile: KeyFile) -> str:
    """The key file's text: the clear lines, each wrap armored after its line, the MAC."""
    lines = _clear_lines(keyfile)
    wrap_lines = lines[len(lines) - len(keyfile.wraps) :]
    lines = lines[: len(lines) - len(keyfile.wraps)]
    for line, wrap in zip(wrap_lines, keyfile.wraps, strict=True):
        lines += [line, armor(wrap.sealed).rstrip("\n")]
    lines.append(f"mac: {b64encode(keyfile.mac).decode()}")
    return "\n".join(lines) + "\n"


def parse_keyfile(text: str, server: str) -> KeyFile:
    """The key file of server; another server's file or a malformed one is refused."""
    label = f"the key file of server {server}"
    lines = text.splitlines()
    if not lines or lines[0] != MAGIC or len(lines) < 2 or not lines[1].startswith("server: "):  # noqa: PLR2004 - magic and server lines
        raise DecryptionFailed(f"{label} is not a pgvault key file")
    if lines[1][len("server: ") :] != server:
        raise DecryptionFailed(f"{label} belongs to server {lines[1][len('server: ') :]!r}")
    if not lines[-1].startswith("mac: "):
        raise DecryptionFailed(f"{label} is malformed")
    try:
        generations, wraps = _parse_body(lines[2:-1], label)
    except (ValueError, InputError):
        raise DecryptionFailed(f"{label} is malformed") from None
    if not generations or not wraps:
        raise DecryptionFailed(f"{label} is malformed")
    mac = b64decode(lines[-1][len("mac: ") :].encode(), "MAC", label)
    return KeyFile(server, tuple(generations), tuple(wraps), mac)


def _parse_body(lines: list[str], label: str) -> tuple[list[Generation], list[Wrap]]:
    generations: list[Generation] = []
    wraps: list[Wrap] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("generation: "):
            number, created, recipient = line[len("generation: ") :].split(" ")
            generations.append(Generation(int(number), created, parse_recipient(recipient)))
            index += 1
        elif line.startswith("wrap: ") and index + 1 < len(lines) and lines[index + 1] == BEGIN:
            end = lines.index(END, index + 1)
            kind, _, names = line[len("wrap: ") :].partition(" ")
            if kind not in (PASSPHRASE, RECIPIENTS):
                raise ValueError(kind)
            recipients = tuple(parse_recipient(n) for n in names.split(",") if n)
            sealed = dearmor("\n".join(lines[index + 1 : end + 1]), label)
            wraps.append(Wrap(PASSPHRASE if kind == PASSPHRASE else RECIPIENTS, recipients, sealed))
            index = end + 1
        else:
            raise ValueError(line)
    return generations, wraps
