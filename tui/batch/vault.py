"""`pgvault --batch vault create|list|show|delete`: az dataprotection backup-vault's verbs."""

from __future__ import annotations

import argparse

from core.errors import ExitCode, InputError
from tui.batch.main import Context
from tui.batch.options import add_cloud, location_from, positive_int, store_config_from
from tui.batch.protection_options import (
    add_notify,
    add_verbs,
    no_arguments,
    notify_from,
    print_json,
)


def _create(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME")
    parser.add_argument(
        "--destination", required=True, metavar="URL", help="where the vault keeps everything"
    )
    parser.add_argument(
        "--immutability-days",
        type=positive_int,
        metavar="N",
        help="S3 only, on a bucket with Object Lock enabled: every object the vault's backups "
        "write is retained N days (GOVERNANCE mode); retention never deletes it earlier",
    )
    add_cloud(parser, test=False)


def _named(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME")


def _update(parser: argparse.ArgumentParser) -> None:
    _named(parser)
    add_notify(parser, "told about every instance's events")
    parser.add_argument(
        "--wal-lag-threshold",
        metavar="DURATION",
        help="notify when an instance's newest archived WAL is older (ISO 8601, e.g. PT15M)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Vaults: a destination whose policies, backup instances and runs are stored in it."
    )
    add_verbs(
        parser,
        {
            "create": ("create a vault in a destination and remember it on this host", _create),
            "list": ("the vaults this host knows", no_arguments),
            "show": ("a vault, its policies and backup instances", _named),
            "update": ("change a vault's notification URLs or WAL lag threshold", _update),
            "delete": ("delete a vault's state (refused while instances use it)", _named),
        },
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from core.protection import service

    if args.verb == "create":
        print_json(
            service.create_vault(
                ctx.state_dir,
                args.name,
                location=location_from(args, args.destination),
                cloud_provider=args.cloud_provider,
                config=store_config_from(args),
                immutability_days=args.immutability_days,
            )
        )
    elif args.verb == "list":
        print_json(service.list_vaults(ctx.state_dir))
    elif args.verb == "show":
        print_json(service.show_vault(ctx.state_dir, args.name))
    elif args.verb == "update":
        notify = notify_from(args)
        if notify is None and args.wal_lag_threshold is None:
            raise InputError(
                "vault update: give --notify URL..., --no-notify or --wal-lag-threshold"
            )
        print_json(
            service.update_vault(
                ctx.state_dir,
                args.name,
                notify=notify,
                wal_lag_threshold=args.wal_lag_threshold,
                allow_inline_secrets=args.allow_inline_secrets,
            )
        )
    else:
        print_json(service.delete_vault(ctx.state_dir, args.name))
    return ExitCode.OK
