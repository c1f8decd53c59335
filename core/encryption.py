"""A server's encryption in the store: its key file, sealing what is written, opening what is read.

A server is encrypted when `<server>/pgvault.keys` exists (barman-cloud lists only base/ and
wals/, so it never sees it). Writers need only the key file's clear data recipient; readers
unlock it once per process with the credentials the command line gave (`use_credentials`).
Whether an object is encrypted is read off its first bytes (the age header), so clear objects
written before encryption was enabled stay readable.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import DecryptionFailed, InputError, ObjectNotFound, PgvaultError
from core.storage import ObjectStore, PutOptions

if TYPE_CHECKING:
    # Not at run time: archiving to a server without a key file never loads `cryptography`
    # (every archive_command call would pay for it); each function imports what it uses.
    from core.codecs import Compressor
    from core.crypto import (
        Identity,
        KeyFile,
        Passphrase,
        UnlockedKeys,
        X25519Identity,
        X25519Recipient,
    )
    from core.crypto.stream import DecryptingReader

KEYFILE = "pgvault.keys"
IDENTITY_ENV = "PGVAULT_ENCRYPTION_IDENTITY"
#: the server's unlocked data keys (an identity file's text): a restore hands them to its
#: restore_command through the 0600 credentials file, so that each `wal-restore` (one
#: process per WAL file) skips the key file's scrypt, about a second each
DATA_IDENTITY_ENV = "PGVAULT_DATA_IDENTITY"
AGE_MAGIC = b"age-encryption.org/v1\n"


def keyfile_key(server: str) -> str:
    return f"{server}/{KEYFILE}"


def is_encrypted(data: bytes | memoryview) -> bool:
    return bytes(data[: len(AGE_MAGIC)]) == AGE_MAGIC


def load_keyfile(store: ObjectStore, server: str) -> KeyFile | None:
    """The server's key file, or None when the server is not encrypted."""
    try:
        raw = store.get_bytes(keyfile_key(server))
    except ObjectNotFound:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionFailed(f"the key file of server {server} is not text") from None
    from core.crypto import parse_keyfile

    return parse_keyfile(text, server)


def save_keyfile(store: ObjectStore, keyfile: KeyFile, options: PutOptions | None = None) -> None:
    from core.crypto import serialize_keyfile

    store.put_bytes(
        keyfile_key(keyfile.server), serialize_keyfile(keyfile).encode(), options or PutOptions()
    )


@dataclass(frozen=True)
class Credentials:
    """What this process was given to unlock key files: never printed, never stored."""

    passphrase: Passphrase | None = None
    identities: tuple[X25519Identity, ...] = ()

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"

    @property
    def given(self) -> bool:
        return self.passphrase is not None or bool(self.identities)


def credentials_from_env() -> Credentials:
    """PGVAULT_ENCRYPTION_PASSPHRASE and PGVAULT_ENCRYPTION_IDENTITY (an identity file's text):
    what a detached job or restore_command has (the latter from its credentials file)."""
    from core.crypto import parse_identity_file, passphrase_from_env

    text = os.environ.get(IDENTITY_ENV)
    return Credentials(passphrase_from_env(), parse_identity_file(text) if text else ())


def credentials_environment(
    credentials: Credentials, data_keys: UnlockedKeys | None = None
) -> dict[str, str]:
    """The variables credentials_from_env and unlocked_keys read back (for restore_command's
    0600 file). The credentials stay beside the data keys: they still open the key file if
    `keys rotate` adds a generation while the restored server replays WAL."""
    from core.crypto import export_keys, format_identity_file
    from core.crypto.passphrase import PASSPHRASE_ENV

    env = {}
    if credentials.passphrase is not None:
        env[PASSPHRASE_ENV] = credentials.passphrase.value
    if credentials.identities:
        env[IDENTITY_ENV] = format_identity_file(credentials.identities)
    if data_keys is not None:
        env[DATA_IDENTITY_ENV] = export_keys(data_keys)
    return env


_lock = threading.Lock()
_credentials = Credentials()
#: by (store, server): two destinations may hold servers of one name with different keys
_unlocked: dict[tuple[str, str], UnlockedKeys] = {}
#: what unlock_in_background met, raised by the next unlocked_keys of that server
_failures: dict[tuple[str, str], PgvaultError] = {}


def _slot(store: ObjectStore, server: str) -> tuple[str, str]:
    return store.describe(), server


def use_credentials(credentials: Credentials) -> None:
    """The process's credentials (the batch edge sets them once, from files or the env)."""
    global _credentials
    with _lock:
        _credentials = credentials
        _unlocked.clear()
        _failures.clear()


def unlocked_keys(store: ObjectStore, server: str) -> UnlockedKeys:
    """The server's identities, unlocked at most once per process (one scrypt at most)."""
    slot = _slot(store, server)
    with _lock:
        keys = _unlocked.get(slot)
        if keys is not None:
            return keys
        failure = _failures.pop(slot, None)
        if failure is not None:
            raise failure
        keyfile = load_keyfile(store, server)
        if keyfile is None:
            raise DecryptionFailed(
                f"server {server} has encrypted objects but no key file ({keyfile_key(server)})"
            )
        keys = _handed_keys(keyfile)
        if keys is None:
            from core.crypto import unlock

            held = _credentials if _credentials.given else credentials_from_env()
            keys = unlock(keyfile, held.passphrase, held.identities)
        _unlocked[slot] = keys
        return keys


def unlock_server(store: ObjectStore, server: str, credentials: Credentials) -> UnlockedKeys:
    """Unlock the server's key file with these credentials, not the process's, and keep its
    keys for this process's reads (the console's unlock form: one operator, several servers)."""
    keyfile = load_keyfile(store, server)
    if keyfile is None:
        raise InputError(f"server {server} has no key file ({keyfile_key(server)}): not encrypted")
    from core.crypto import unlock

    keys = unlock(keyfile, credentials.passphrase, credentials.identities)
    slot = _slot(store, server)
    with _lock:
        _unlocked[slot] = keys
        _failures.pop(slot, None)
    return keys


def credentials_given() -> bool:
    """Whether this process holds a passphrase or identities (given, or in its environment)."""
    with _lock:
        given = _credentials.given
    return given or environment_has_credentials()


def environment_has_credentials() -> bool:
    """Whether this process's environment names a passphrase or identities (a job it starts
    inherits them)."""
    from core.crypto.passphrase import PASSPHRASE_ENV

    return bool(os.environ.get(PASSPHRASE_ENV) or os.environ.get(IDENTITY_ENV))


def unlock_in_background(store: ObjectStore, server: str) -> None:
    """Start unlocking the server's key file on a thread, when this process holds a
    passphrase or identities: the scrypt (about a second at 2^18) releases the GIL, so it
    overlaps what the caller does until it needs the keys (unlocked_keys waits for it)."""
    slot = _slot(store, server)
    with _lock:
        if slot in _unlocked or not _credentials.given:
            return

    def work() -> None:
        with _lock:
            if slot in _unlocked or slot in _failures:
                return
            try:
                keyfile = load_keyfile(store, server)
                if keyfile is None:
                    return  # a clear server: nothing to unlock
                from core.crypto import unlock

                keys = unlock(keyfile, _credentials.passphrase, _credentials.identities)
            except PgvaultError as exc:  # raised by the first unlocked_keys, not twice
                _failures[slot] = exc
                return
            except Exception:  # unlocked_keys meets it again and reports it
                return
            _unlocked[slot] = keys

    threading.Thread(target=work, name="pgvault-unlock", daemon=True).start()


def _handed_keys(keyfile: KeyFile) -> UnlockedKeys | None:
    """The data keys a restore handed (DATA_IDENTITY_ENV) when they fit this key file; None
    otherwise (none handed, another server's, or a generation added since): then the
    passphrase or identities held unlock the file as usual."""
    text = os.environ.get(DATA_IDENTITY_ENV)
    if not text:
        return None
    from core.crypto import unlock_exported

    try:
        return unlock_exported(keyfile, text)
    except DecryptionFailed:
        return None


def keys_to_hand(store: ObjectStore, server: str) -> UnlockedKeys | None:
    """The server's data keys for a restore_command: those this process unlocked, or unlocks
    now with what it holds; None when it holds nothing that opens them (wal-restore will
    then say what is missing, as without this)."""
    with _lock:
        keys = _unlocked.get(_slot(store, server))
        held = _credentials.given or bool(os.environ.get(DATA_IDENTITY_ENV))
    if keys is not None:
        return keys
    if not held and not credentials_from_env().given:
        return None
    try:
        return unlocked_keys(store, server)
    except DecryptionFailed:
        return None


def current_credentials() -> Credentials:
    """What this process was given, else what its environment holds."""
    with _lock:
        return _credentials if _credentials.given else credentials_from_env()


def write_recipient(store: ObjectStore, server: str) -> X25519Recipient | None:
    """The recipient new objects of server are sealed to; None when it is not encrypted."""
    keyfile = load_keyfile(store, server)
    return keyfile.recipient if keyfile is not None else None


def backup_recipient(store: ObjectStore, server: str) -> X25519Recipient | None:
    """write_recipient for a new backup: a server whose backups are sealed but whose key file
    is gone (deleted by mistake, or by someone who wants the next ones in clear) is refused,
    not backed up in plaintext. (WAL's per-file path cannot afford the listing this needs.)"""
    recipient = write_recipient(store, server)
    if recipient is not None:
        return recipient
    sealed = next(
        (o.key for o in store.list_objects(f"{server}/base/") if o.key.endswith(".age")), None
    )
    if sealed is None:
        sealed = _sealed_logical_manifest(store, server)
    if sealed is not None:
        raise DecryptionFailed(
            f"server {server} has encrypted backups ({sealed}) but no key file "
            f"({keyfile_key(server)}): a backup is not written in plaintext for it; put "
            "the key file back (from a copy of the destination), or back up under a new "
            "server name"
        )
    return None


def _sealed_logical_manifest(store: ObjectStore, server: str) -> str | None:
    """The newest logical backup's manifest when it is an age file: logical objects keep
    pg_dump's names (no .age), so only their first bytes tell."""
    manifests = sorted(
        o.key for o in store.list_objects(f"{server}/logical/") if o.key.endswith("/logical.json")
    )
    if not manifests:
        return None
    try:
        head = store.read_range(manifests[-1], 0, len(AGE_MAGIC))
    except ObjectNotFound:  # deleted meanwhile
        return None
    return manifests[-1] if is_encrypted(head) else None


def preload_cipher() -> None:
    """Import what sealing uses on a thread, for a long-lived writer (the WAL pusher) that
    would otherwise pay for `cryptography`'s import with its first file's wait."""

    def work() -> None:
        from cryptography.hazmat.primitives.asymmetric import x25519  # noqa: F401
        from cryptography.hazmat.primitives.ciphers import aead  # noqa: F401
        from cryptography.hazmat.primitives.kdf import hkdf  # noqa: F401

        import core.crypto.stream  # noqa: F401 - imported for its side effect

    threading.Thread(target=work, name="pgvault-preload", daemon=True).start()


class SealBuffers:
    """A buffer per thread to seal into, kept from one object to the next, for a writer that
    seals many objects of about one size (the WAL pusher's 16 MiB segments)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self, size: int) -> bytearray:
        buffer: bytearray | None = getattr(self._local, "buffer", None)
        if buffer is None or len(buffer) < size:
            buffer = self._local.buffer = bytearray(size)
        return buffer


def seal(
    data: bytes,
    recipient: X25519Recipient | None,
    buffers: SealBuffers | None = None,
) -> bytes | bytearray | memoryview:
    """data as an age file for recipient (as it is when there is no recipient); with
    buffers, a view of this thread's buffer, valid until its next seal."""
    if recipient is None:
        return data
    from core.crypto import encrypt_bytes

    return encrypt_bytes(data, [recipient], bytearray if buffers is None else buffers)


def open_object(store: ObjectStore, server: str, data: bytes, label: str) -> bytes:
    """The plaintext of a stored object: decrypted when it is an age file."""
    if not is_encrypted(data):
        return data
    from core.crypto import decrypt_bytes

    return decrypt_bytes(data, unlocked_keys(store, server).identities, label)


class _Buffer:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def drain(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out


class EncryptingCompressor:
    """A part's stream transform: compress (when a codec is set), then seal as age."""

    def __init__(self, inner: Compressor | None, recipient: X25519Recipient) -> None:
        from core.crypto.stream import EncryptingWriter

        self._inner = inner
        self._out = _Buffer()
        self._writer = EncryptingWriter(self._out, [recipient])

    def compress(self, data: bytes | memoryview) -> bytes:
        plain = self._inner.compress(data) if self._inner is not None else data
        if plain:
            self._writer.write(plain)
        return self._out.drain()

    def flush(self) -> bytes:
        if self._inner is not None:
            tail = self._inner.flush()
            if tail:
                self._writer.write(tail)
        self._writer.close()
        return self._out.drain()

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()


class _Pending:
    """The bytes fed so far and not yet read by the decrypting reader."""

    def __init__(self) -> None:
        self.data = bytearray()

    def read(self, size: int) -> bytes:
        out = bytes(self.data[:size])
        del self.data[:size]
        return out


class PushDecryptor:
    """Decrypts an age file fed in pieces (for readers that push bytes, as verify's does)."""

    def __init__(self, identities: Sequence[Identity], label: str) -> None:
        self._identities = identities
        self._label = label
        self._pending = _Pending()
        self._reader: DecryptingReader | None = None

    def feed(self, data: bytes) -> bytes:
        """The plaintext of every chunk known not to be the last one."""
        self._pending.data += data
        if self._reader is None and not self._start(final=False):
            return b""
        assert self._reader is not None  # noqa: S101 - _start set it
        out = []
        from core.crypto.stream import CHUNK, TAG

        # More than one sealed chunk waiting: the next one cannot be the last.
        while len(self._pending.data) > CHUNK + TAG:
            out.append(self._reader.read(CHUNK))
        return b"".join(out)

    def finish(self) -> bytes:
        """The rest, once every byte was fed; DecryptionFailed for a truncated file."""
        if self._reader is None:
            self._start(final=True)
        assert self._reader is not None  # noqa: S101 - _start raises or sets it
        return self._reader.read()

    def _start(self, final: bool) -> bool:
        from core.crypto.stream import NONCE_SIZE, DecryptingReader

        data = self._pending.data
        mac = data.find(b"\n--- ")
        end = data.find(b"\n", mac + 1) if mac >= 0 else -1
        if not final and (end < 0 or len(data) < end + 1 + NONCE_SIZE):
            return False
        self._reader = DecryptingReader(self._pending, self._identities, self._label)
        return True
