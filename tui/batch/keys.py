"""`pgvault --batch keys init|show|rotate|rewrap [flags] URL SERVER_NAME`.

init creates the server's key file (then every backup and WAL file of it is encrypted);
show prints its generations and who can unlock it; rotate starts a new data key; rewrap
changes the passphrase (--new-passphrase-file, --drop-passphrase) or the operator
recipients (--encrypt-to, --no-recipients). No secret is ever taken from argv or printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ExitCode, InputError
from tui.batch.encryption_options import add_passphrase_file, add_unlock, read_unlock
from tui.batch.main import Context
from tui.batch.options import add_cloud, add_general, destination_from, refuse_given

if TYPE_CHECKING:
    from core.crypto import X25519Recipient
    from core.keyring import Rewrap, Unlock

ACTIONS = ("init", "show", "rotate", "rewrap")


#: the flags of one action or a few (argparse dests), refused with the others (exit 3)
ACTION_FLAGS = {
    "encrypt_to": ("init", "rewrap"),
    "new_passphrase_file": ("rewrap",),
    "drop_passphrase": ("rewrap",),
    "no_recipients": ("rewrap",),
    "encryption_passphrase_file": ("init", "rotate", "rewrap"),
    "identity_file": ("rotate", "rewrap"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Manage the encryption keys of a server (its key file in the store)."
    parser.add_argument("action", choices=ACTIONS, help="what to do")
    parser.add_argument("url", metavar="DESTINATION_URL", help="the backup destination")
    parser.add_argument("server_name", metavar="SERVER_NAME", help="the name of the server")
    add_general(parser)
    add_cloud(parser, test=False)
    add_unlock(parser)
    parser.add_argument(
        "--encrypt-to",
        action="append",
        default=None,
        metavar="age1...",
        help="an operator recipient the keys are wrapped for (init, rewrap; repeatable)",
    )
    add_passphrase_file(parser, "--new-passphrase-file")
    parser.add_argument(
        "--drop-passphrase", action="store_true", help="rewrap: remove the passphrase wrap"
    )
    parser.add_argument(
        "--no-recipients", action="store_true", help="rewrap: remove the operator recipients"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from core.crypto import parse_recipient, passphrase_from_env, read_passphrase_file
    from core.keyring import describe, init_keys, rewrap_keys, rotate_keys, show_keys

    refuse_given(
        args,
        [dest for dest, actions in ACTION_FLAGS.items() if args.action not in actions],
        f"to keys {args.action}",
    )
    recipients = tuple(parse_recipient(r) for r in args.encrypt_to or ())
    server = args.server_name
    with destination_from(args).open() as store:
        if args.action == "init":
            path = args.encryption_passphrase_file
            passphrase = read_passphrase_file(Path(path)) if path else passphrase_from_env()
            keyfile = init_keys(store, server, passphrase, recipients)
        elif args.action == "show":
            keyfile = show_keys(store, server)
        elif args.action == "rotate":
            keyfile = rotate_keys(store, server, _held(args))
        else:
            keyfile = rewrap_keys(store, server, _held(args), _rewrap(args, recipients))
    print("\n".join(describe(keyfile)))
    return ExitCode.OK


def _held(args: argparse.Namespace) -> Unlock:
    from core.keyring import Unlock

    credentials = read_unlock(args)
    return Unlock(credentials.passphrase, credentials.identities)


def _rewrap(args: argparse.Namespace, recipients: tuple[X25519Recipient, ...]) -> Rewrap:
    from core.crypto import read_passphrase_file
    from core.keyring import Rewrap

    new = args.new_passphrase_file
    if not (new or args.drop_passphrase or recipients or args.no_recipients):
        raise InputError(
            "rewrap needs --new-passphrase-file, --drop-passphrase, --encrypt-to or --no-recipients"
        )
    if recipients and args.no_recipients:
        raise InputError("--encrypt-to and --no-recipients are mutually exclusive")
    return Rewrap(
        passphrase=read_passphrase_file(Path(new)) if new else None,
        drop_passphrase=args.drop_passphrase,
        recipients=() if args.no_recipients else (recipients or None),
    )
