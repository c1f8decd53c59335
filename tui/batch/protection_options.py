"""What the protection commands (vault, policy, backup-instance, agent, status) share:
verbs as subcommands, `--vault`, instants, and JSON on stdout."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from tui.batch.options import add_general, add_help
from tui.batch.options import print_json as print_json  # the one JSON printer, re-exported

Verb = Callable[[argparse.ArgumentParser], None]


def add_verbs(
    parser: argparse.ArgumentParser, verbs: Mapping[str, tuple[str, Verb]], dest: str = "verb"
) -> None:
    """One subcommand per verb (name -> (help, add its arguments)), each with -v/-q/--help."""
    add_help(parser)
    sub = parser.add_subparsers(dest=dest, required=True, metavar="VERB")
    for name, (summary, add) in verbs.items():
        verb = sub.add_parser(name, help=summary, description=summary, add_help=False)
        add_general(verb)
        add(verb)


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """A verb without arguments of its own."""


def add_vault(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--vault",
        "--vault-name",
        dest="vault",
        required=required,
        help="the vault's name (see `vault list`)",
    )


def add_notify(parser: argparse.ArgumentParser, whom: str) -> None:
    """`--notify URL...` (apprise URLs or secret references, replacing the list) or
    `--no-notify`, and the opt-in that stores a URL holding a secret as it is."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--notify",
        nargs="+",
        metavar="URL",
        help=f"apprise notification URLs {whom} (json://..., mailto://...; replaces the list); "
        "a URL holding a password or token is given as a secret reference to it "
        "(env:NAME, file:/PATH, keyring:SERVICE/USERNAME), read when a notice is sent",
    )
    group.add_argument("--no-notify", action="store_true", help="remove every notification URL")
    add_allow_inline(parser)


def add_allow_inline(parser: argparse.ArgumentParser) -> None:
    # core.protection.notify_urls.ALLOW_INLINE, spelt here: the batch entry imports no
    # protection code until a protection command runs (wal-archive starts on every segment)
    parser.add_argument(
        "--allow-secret-in-vault",
        dest="allow_inline_secrets",
        action="store_true",
        help="store a notification URL that holds a password or token as it is, in clear in "
        "the vault's state in its destination (refused without this flag)",
    )


def notify_from(args: argparse.Namespace) -> tuple[str, ...] | None:
    """The URLs asked for: None when neither flag was given, () for --no-notify."""
    if args.no_notify:
        return ()
    return None if args.notify is None else tuple(args.notify)


def instant(text: str) -> datetime:
    """argparse type for an ISO 8601 date or date-time; UTC when no offset is given."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date-time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def now_or(value: datetime | None) -> datetime:
    return value if value is not None else datetime.now(UTC)
