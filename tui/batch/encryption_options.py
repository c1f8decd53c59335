"""The encryption flags: where a passphrase or an identity comes from, never its value.

A passphrase is read from `--encryption-passphrase-file` (0600) or PGVAULT_ENCRYPTION_PASSPHRASE;
identities from `--identity-file` (0600, age-keygen's format) or PGVAULT_ENCRYPTION_IDENTITY
(which restore_command's credentials file carries). `--encryption-passphrase VALUE` is refused
by name, so that argparse's prefix matching cannot take it for the file flag.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import InputError

if TYPE_CHECKING:
    from core.encryption import Credentials


class _Refused(argparse.Action):
    """A secret on argv: refused without echoing it (ps and shell history would keep it)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        raise InputError(
            f"{option_string} is refused: a passphrase on the command line is visible to "
            "other users; use --encryption-passphrase-file or PGVAULT_ENCRYPTION_PASSPHRASE"
        )


def refuse_passphrase_value(parser: argparse.ArgumentParser) -> None:
    """Every command: `--encryption-passphrase VALUE` refused by name, the value not echoed
    (unknown, it would be repeated in argparse's "unrecognized arguments")."""
    parser.add_argument(
        "--encryption-passphrase", nargs="?", action=_Refused, help=argparse.SUPPRESS
    )


def add_passphrase_file(
    parser: argparse.ArgumentParser, flag: str = "--encryption-passphrase-file"
) -> None:
    parser.add_argument(
        flag,
        metavar="PATH",
        help="a file (mode 0600) holding the encryption passphrase "
        "(else PGVAULT_ENCRYPTION_PASSPHRASE)",
    )


def add_unlock(parser: argparse.ArgumentParser) -> None:
    """What unlocks an encrypted server's key file: a passphrase file or identity files."""
    group = parser.add_argument_group("Encryption (for a server with a key file)")
    add_passphrase_file(group)  # type: ignore[arg-type]
    group.add_argument(
        "--identity-file",
        action="append",
        default=[],
        metavar="PATH",
        help="an age identity file (mode 0600) of an operator the key file is wrapped for "
        "(repeatable)",
    )


def read_unlock(args: argparse.Namespace, piped: bool = False) -> Credentials:
    """The passphrase and identities the flags give, else those of the environment.

    `piped`: the caller puts them in its job's request (keys), which a detached process
    reads from its pipe; the others' detached jobs read the environment they inherit."""
    from core.crypto import read_identity_file, read_passphrase_file
    from core.encryption import Credentials, credentials_from_env

    path = getattr(args, "encryption_passphrase_file", None)
    files = getattr(args, "identity_file", None) or []
    if (path or files) and getattr(args, "detach", False) and not piped:
        raise InputError(
            "--detach with --encryption-passphrase-file or --identity-file is not available: "
            "a detached job reads PGVAULT_ENCRYPTION_PASSPHRASE or PGVAULT_ENCRYPTION_IDENTITY"
        )
    env = credentials_from_env()
    passphrase = read_passphrase_file(Path(path)) if path else env.passphrase
    identities = [i for f in files for i in read_identity_file(Path(f))]
    return Credentials(passphrase, tuple(identities) or env.identities)


def apply_unlock(args: argparse.Namespace) -> None:
    """Hand this process's credentials to core.encryption, which unlocks once when needed."""
    from core.encryption import use_credentials

    use_credentials(read_unlock(args))
