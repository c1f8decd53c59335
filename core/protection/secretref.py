"""Secret references (`env:NAME`, `file:PATH`, `keyring:SERVICE/USERNAME`): where a secret is
read at run time on each host, so that the vault stores only the reference.

A backup instance's database password and a notification URL that holds a password or a
token are both kept this way (core.protection.model, core.protection.notify_urls).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum

from core.errors import InputError
from core.named_files import read_named_file
from core.secrets import register_secret


class SecretStoreType(StrEnum):
    ENV = "env"
    FILE = "file"
    #: the host's keyring (the `keyring` package: Secret Service, KWallet, or a backend named
    #: by PYTHON_KEYRING_BACKEND), as keyring:SERVICE/USERNAME
    KEYRING = "keyring"


@dataclass(frozen=True)
class SecretReference:
    """Where the database password is read at run time; the reference is not a secret."""

    store_type: SecretStoreType
    uri: str

    def __str__(self) -> str:
        return f"{self.store_type}:{self.uri}"

    @classmethod
    def parse(cls, text: str, where: str = "secret reference") -> SecretReference:
        kind, sep, uri = text.partition(":")
        if not sep or not uri or kind not in SecretStoreType.__members__.values():
            raise InputError(
                f"{where}: {text!r} is not env:NAME, file:PATH or keyring:SERVICE/USERNAME"
            )
        if kind == SecretStoreType.FILE and not os.path.isabs(uri):
            raise InputError(f"{where}: file:{uri} must be an absolute path")
        service, _, username = uri.partition("/")
        if kind == SecretStoreType.KEYRING and not (service and username):
            raise InputError(f"{where}: keyring:{uri} must be keyring:SERVICE/USERNAME")
        return cls(SecretStoreType(kind), uri)

    def resolve(self) -> str:
        """The secret's value, registered for redaction; InputError when it cannot be read."""
        if self.store_type is SecretStoreType.ENV:
            value = os.environ.get(self.uri)
            if value is None:
                raise InputError(f"secret reference {self}: the environment variable is not set")
        elif self.store_type is SecretStoreType.KEYRING:
            value = _from_keyring(self)
        else:
            value = _from_file(self)
        if not value:
            raise InputError(f"secret reference {self}: the secret is empty")
        register_secret(value)
        return value


#: far above any password; a larger file is no secret file
MAX_SECRET = 64 * 1024


def _from_file(reference: SecretReference) -> str:
    """The file as text (a FIFO nobody writes to reads as empty instead of hanging the
    agent: core.named_files)."""
    try:
        data = read_named_file(reference.uri, MAX_SECRET)
    except OSError as exc:
        raise InputError(
            f"secret reference {reference}: cannot read the file ({exc.strerror})"
        ) from None
    if len(data) > MAX_SECRET:
        raise InputError(f"secret reference {reference}: the file is larger than 64 KiB")
    try:
        return data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise InputError(f"secret reference {reference}: the file is not UTF-8 text") from None


def _from_keyring(reference: SecretReference) -> str:
    """The password the host's keyring holds for SERVICE/USERNAME."""
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise InputError(
            f"secret reference {reference}: keyring references need the keyring package "
            "(pip install 'pgvault[keyring]')"
        ) from None
    service, _, username = reference.uri.partition("/")
    try:
        value = keyring.get_password(service, username)
    except keyring.errors.KeyringError as exc:
        # NoKeyringError's text tells how to choose a backend; it holds no secret
        raise InputError(f"secret reference {reference}: the keyring failed ({exc})") from None
    if value is None:
        raise InputError(f"secret reference {reference}: the keyring holds no such password")
    return value


__all__ = ["SecretReference", "SecretStoreType"]
