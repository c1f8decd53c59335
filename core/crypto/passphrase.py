"""Reading passphrases and identities from files or the environment, never from argv."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from core.crypto.keys import DEFAULT_LOG_N, Passphrase, X25519Identity, parse_identity_file
from core.errors import InputError
from core.named_files import read_named_file

PASSPHRASE_ENV = "PGVAULT_ENCRYPTION_PASSPHRASE"  # noqa: S105 - a variable name, not a secret


#: far above any passphrase or identity file; what is larger is not one (/dev/zero...)
MAX_SECRET_FILE = 1024 * 1024


def _read_private(path: Path, what: str) -> str:
    """The text of a file only its owner can access; others are refused, as ssh does (a FIFO
    nobody writes to reads as empty, a pipe with a writer as it comes: core.named_files)."""

    def owner_only(status: os.stat_result) -> None:
        if status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InputError(
                f"refusing the {what} {path}: group or others can access it (chmod 600 it)"
            )

    try:
        data = read_named_file(path, MAX_SECRET_FILE, owner_only)
    except OSError as exc:
        raise InputError(f"cannot read the {what} {path}: {exc.strerror}") from None
    if len(data) > MAX_SECRET_FILE:
        raise InputError(f"the {what} {path} is larger than 1 MiB: it holds a few lines")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"the {what} {path} is not UTF-8 text") from None


def _strip_newline(text: str) -> str:
    for ending in ("\r\n", "\n"):
        if text.endswith(ending):
            return text[: -len(ending)]
    return text


def read_passphrase_file(path: Path, log_n: int = DEFAULT_LOG_N) -> Passphrase:
    """The passphrase in path (one trailing newline dropped), registered as a secret."""
    text = _strip_newline(_read_private(path, "passphrase file"))
    if not text:
        raise InputError(f"the passphrase file {path} is empty")
    return Passphrase(text, log_n)


def passphrase_from_env(
    environ: Mapping[str, str] | None = None, name: str = PASSPHRASE_ENV
) -> Passphrase | None:
    """The passphrase in the environment variable, or None when it is unset."""
    value = (os.environ if environ is None else environ).get(name)
    if value is None:
        return None
    if not value:
        raise InputError(f"{name} is set but empty")
    return Passphrase(value)


def read_identity_file(path: Path) -> tuple[X25519Identity, ...]:
    """The identities of an age identity file (as age-keygen writes), owner-only."""
    return parse_identity_file(_read_private(path, "identity file"))
