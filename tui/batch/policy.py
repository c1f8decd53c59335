"""`pgvault --batch policy ...`: az dataprotection backup-policy's verbs, JSON in and out."""

from __future__ import annotations

import argparse

from core.errors import ExitCode
from tui.batch.main import Context
from tui.batch.options import add_general, add_help, positive_int
from tui.batch.policy_edit import add_helpers, run_helper
from tui.batch.protection_options import add_vault, instant, no_arguments, print_json


def _named(parser: argparse.ArgumentParser) -> None:
    add_vault(parser)
    parser.add_argument("--name", required=True, help="the policy's name")


def _create(parser: argparse.ArgumentParser) -> None:
    _named(parser)
    parser.add_argument("--policy", required=True, metavar="FILE", help="the policy JSON")


def _simulate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, metavar="FILE", help="the policy JSON")
    parser.add_argument(
        "--from", dest="start", required=True, type=instant, help="ISO date (UTC if no offset)"
    )
    parser.add_argument("--days", required=True, type=positive_int)
    parser.add_argument(
        "--secondary-retention",
        choices=("keep", "follow"),
        default="keep",
        help="follow: each deletion is also shown in the instance's secondary destination",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Backup policies: a schedule with tagging criteria, retention rules."
    add_help(parser)
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs = {
        "get-default-policy-template": ("print the default policy", no_arguments),
        "create": ("store a policy in a vault", _create),
        "list": ("the vault's policies", add_vault),
        "show": ("one policy", _named),
        "delete": ("delete a policy no instance uses", _named),
        "simulate": ("run a policy against a clock: slots, tags, moves, deletions", _simulate),
    }
    for name, (summary, add) in verbs.items():
        verb = sub.add_parser(name, help=summary, description=summary, add_help=False)
        add_general(verb)
        add(verb)
    add_helpers(sub)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from core.protection import service

    verb = args.verb
    if getattr(args, "helper", None):
        run_helper(args)
    elif verb == "get-default-policy-template":
        from core.protection.template import default_policy_template

        print_json(default_policy_template())
    elif verb == "create":
        print_json(service.create_policy(ctx.state_dir, args.vault, args.name, args.policy))
    elif verb == "list":
        print_json(service.list_policies(ctx.state_dir, args.vault))
    elif verb == "show":
        print_json(service.show_policy(ctx.state_dir, args.vault, args.name))
    elif verb == "delete":
        print_json(service.delete_policy(ctx.state_dir, args.vault, args.name))
    else:
        print_json(
            service.simulate_policy(args.policy, args.start, args.days, args.secondary_retention)
        )
    return ExitCode.OK
