"""`pgvault --batch keys ACTION [flags] URL SERVER_NAME`.

init creates the server's key file (then every backup and WAL file of it is encrypted);
show prints its generations and who can unlock it; rotate starts a new data key; rewrap
changes the passphrase (--new-passphrase-file, --drop-passphrase) or the operator
recipients (--encrypt-to, --no-recipients) in one go, and rotate-passphrase
(--new-passphrase-file), add-recipient (--encrypt-to) and remove-recipient (--recipient)
make one of those changes each. Every change runs as a `keys` job (`jobs list`
shows what changed, never a secret), `--detach` in the background as every job command;
show writes nothing and is no job. No secret is ever taken from argv or printed: a detached
change reads its secret files here and hands them to its process through the job's pipe.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ExitCode
from tui.batch.encryption_options import add_passphrase_file, add_unlock, read_unlock
from tui.batch.jobrun import add_job_options, run_as_job
from tui.batch.main import Context
from tui.batch.options import add_cloud, add_general, destination_from, refuse_given

if TYPE_CHECKING:
    from core.keyring import KeysRequest

ONE_CHANGE = ("rotate-passphrase", "add-recipient", "remove-recipient")
ACTIONS = ("init", "show", "rotate", "rewrap", *ONE_CHANGE)
UNLOCKING = ("rotate", "rewrap", *ONE_CHANGE)


#: the flags of one action or a few (argparse dests), refused with the others (exit 3)
ACTION_FLAGS = {
    "encrypt_to": ("init", "rewrap", "add-recipient"),
    "recipient": ("remove-recipient",),
    "new_passphrase_file": ("rewrap", "rotate-passphrase"),
    "drop_passphrase": ("rewrap",),
    "no_recipients": ("rewrap",),
    "encryption_passphrase_file": ("init", *UNLOCKING),
    "identity_file": UNLOCKING,
    "detach": ("init", *UNLOCKING),
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
        help="an operator recipient the keys are wrapped for (init, rewrap, add-recipient; "
        "repeatable)",
    )
    parser.add_argument(
        "--recipient",
        action="append",
        default=None,
        metavar="age1...",
        help="remove-recipient: the operator recipient to remove (repeatable)",
    )
    add_passphrase_file(parser, "--new-passphrase-file")
    parser.add_argument(
        "--drop-passphrase", action="store_true", help="rewrap: remove the passphrase wrap"
    )
    parser.add_argument(
        "--no-recipients", action="store_true", help="rewrap: remove the operator recipients"
    )
    add_job_options(parser)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from core.keyring import describe, show_keys

    refuse_given(
        args,
        [dest for dest, actions in ACTION_FLAGS.items() if args.action not in actions],
        f"to keys {args.action}",
    )
    if args.action == "show":
        with destination_from(args).open() as store:
            print("\n".join(describe(show_keys(store, args.server_name))))
        return ExitCode.OK
    return _change(args, ctx)


def _change(args: argparse.Namespace, ctx: Context) -> int:
    """A key change runs as a `keys` job: `jobs list` is the key file's audit trail."""
    from core.crypto import read_passphrase_file
    from core.jobs.results import KeysJobResult
    from core.keyjob import KEYS
    from core.keyring import KeysRequest, validate_request

    where = destination_from(args)
    request = KeysRequest(
        action=args.action,
        location=where.location,
        server=args.server_name,
        store_config=where.config,
        recipients=tuple(args.encrypt_to or args.recipient or ()),
        no_recipients=args.no_recipients,
        drop_passphrase=args.drop_passphrase,
        new_passphrase=(
            read_passphrase_file(Path(args.new_passphrase_file))
            if args.new_passphrase_file
            else None
        ),
    )
    validate_request(request)  # bad input is exit 3 before any secret is read
    job = run_as_job(args, ctx, KEYS, _with_secrets(args, request), must_record=True)
    if job is not None:  # else detached: the job id is printed
        print("\n".join(job.result_as(KeysJobResult).lines))
    return ExitCode.OK


def _with_secrets(args: argparse.Namespace, request: KeysRequest) -> KeysRequest:
    """The request with what unlocks the key file (init: the passphrase to wrap for)."""
    from core.crypto import passphrase_from_env, read_passphrase_file

    if args.action == "init":
        path = args.encryption_passphrase_file
        passphrase = read_passphrase_file(Path(path)) if path else passphrase_from_env()
        return replace(request, passphrase=passphrase)
    held = read_unlock(args, piped=True)  # the request carries them to a detached process
    return replace(request, passphrase=held.passphrase, identities=held.identities)
