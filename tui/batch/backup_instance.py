"""`pgvault --batch backup-instance ...`: az dataprotection backup-instance's verbs."""

from __future__ import annotations

import argparse

from core.errors import ExitCode, InputError
from tui.batch.main import Context
from tui.batch.protection_options import (
    add_allow_inline,
    add_notify,
    add_vault,
    add_verbs,
    notify_from,
    print_json,
)


def _initialize(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--datasource", required=True, metavar="CONNINFO", help="libpq conninfo, no password"
    )
    parser.add_argument("--server-name", required=True, help="the catalog's server name")
    parser.add_argument("--policy", required=True, help="the policy's name in the vault")
    parser.add_argument("--name", help="the instance's name (default: the server name)")
    parser.add_argument("--secret-store-type", choices=("env", "file", "keyring"))
    parser.add_argument("--secret-store-uri", metavar="NAME|PATH")


def _create(parser: argparse.ArgumentParser) -> None:
    add_vault(parser)
    parser.add_argument("--backup-instance", required=True, metavar="FILE")
    add_allow_inline(parser)
    _add_secondary(parser)


def _add_secondary(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--secondary-destination",
        metavar="URL",
        help="the agent copies each new backup (and the WAL it needs) there, verified; no "
        "credentials in the URL: the agent's environment holds them",
    )
    group.add_argument(
        "--no-secondary-destination", action="store_true", help="stop copying new backups"
    )
    parser.add_argument(
        "--secondary-retention",
        choices=("keep", "follow"),
        help="keep (default): copies stay in the secondary until deleted there; follow: "
        "retention's deletions at the primary delete the backup's copy there too",
    )


def _named(parser: argparse.ArgumentParser) -> None:
    add_vault(parser)
    parser.add_argument("--name", required=True, help="the backup instance's name")


def _adhoc(parser: argparse.ArgumentParser) -> None:
    _named(parser)
    parser.add_argument(
        "--rule-name", required=True, help="the retention (or backup) rule whose tag it gets"
    )


def _update(parser: argparse.ArgumentParser) -> None:
    _named(parser)
    parser.add_argument(
        "--policy",
        metavar="NAME|ID",
        help="move it to another of the vault's policies, by name or ARM policy ID (its runs "
        "and backups stay theirs)",
    )
    add_notify(parser, "told about this instance's events, besides the vault's")
    _add_secondary(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Backup instances: a database under a vault's policy."
    add_verbs(
        parser,
        {
            "initialize": ("print a backup instance document to create", _initialize),
            "create": ("store a backup instance in a vault", _create),
            "list": ("the vault's backup instances", add_vault),
            "show": ("one backup instance and its runs", _named),
            "update": (
                "change an instance's policy, notification URLs, or secondary destination "
                "and retention",
                _update,
            ),
            "delete": ("delete an instance and its run records (not its backups)", _named),
            "stop-protection": ("the agent stops backing it up", _named),
            "resume-protection": ("the agent backs it up again", _named),
            "adhoc-backup": ("take a backup now, tagged for a rule", _adhoc),
        },
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from core.protection import service
    from core.protection.model import ProtectionState

    verb = args.verb
    if verb == "initialize":
        print_json(
            service.initialize_instance(
                conninfo=args.datasource,
                server_name=args.server_name,
                policy=args.policy,
                name=args.name,
                secret_store_type=args.secret_store_type,
                secret_store_uri=args.secret_store_uri,
            )
        )
    elif verb == "create":
        secondary = "" if args.no_secondary_destination else args.secondary_destination
        created = service.create_instance(
            ctx.state_dir,
            args.vault,
            args.backup_instance,
            args.allow_inline_secrets,
            secondary,
            args.secondary_retention,
        )
        print_json(created)
    elif verb == "list":
        print_json(service.list_instances(ctx.state_dir, args.vault))
    elif verb == "show":
        print_json(service.show_instance(ctx.state_dir, args.vault, args.name))
    elif verb == "update":
        notify = notify_from(args)
        secondary = "" if args.no_secondary_destination else args.secondary_destination
        unchanged = (notify, secondary, args.secondary_retention, args.policy)
        if all(value is None for value in unchanged):
            raise InputError(
                "backup-instance update: give --policy NAME, --notify URL... or --no-notify, "
                "--secondary-destination URL or --no-secondary-destination, or "
                "--secondary-retention keep|follow"
            )
        updated = service.update_instance(
            ctx.state_dir,
            args.vault,
            args.name,
            notify,
            args.allow_inline_secrets,
            secondary=secondary,
            secondary_retention=args.secondary_retention,
            policy=args.policy,
        )
        print_json(updated)
    elif verb == "delete":
        print_json(service.delete_instance(ctx.state_dir, args.vault, args.name))
    elif verb in ("stop-protection", "resume-protection"):
        state = ProtectionState.STOPPED if verb == "stop-protection" else ProtectionState.CONFIGURED
        print_json(service.set_protection(ctx.state_dir, args.vault, args.name, state))
    else:
        return _adhoc_backup(args, ctx)
    return ExitCode.OK


def _adhoc_backup(args: argparse.Namespace, ctx: Context) -> int:
    import sys

    from core.protection.agent import adhoc
    from core.protection.stopping import stop_on_signals, stop_reason
    from tui.batch.agent import copy_cancelled
    from tui.batch.protection_options import now_or

    with stop_on_signals("adhoc-backup"):  # cancels its backup as `jobs cancel` does
        outcome = adhoc(ctx.state_dir, args.vault, args.name, args.rule_name, now_or(None))
    print_json(outcome.to_json())
    record = outcome.record
    if record is not None and record.interrupted:  # stopped mid-backup: one line says so
        print(
            f"pgvault backup-instance: {stop_reason()}: cancelled the backup of {args.name}",
            file=sys.stderr,
        )
        return ExitCode.FAILED
    copied = outcome.secondary_copy
    if copied is not None and copied.interrupted:  # stopped mid-copy: the backup is DONE
        print(
            f"pgvault backup-instance: {copied.interrupted}: cancelled the copy of "
            f"{copy_cancelled(outcome)}, made by the next agent pass",
            file=sys.stderr,
        )
    if copied is not None and copied.error:
        return ExitCode.FAILED  # the backup exists; its second copy does not (yet)
    return ExitCode.OK if record is not None and record.backup_id else ExitCode.FAILED
