"""`pgvault --batch status [--vault V] [--format json] [--check]`: is every instance safe?"""

from __future__ import annotations

import argparse

from core.errors import ExitCode
from tui.batch.backup_list import table
from tui.batch.catalog_options import add_format
from tui.batch.main import Context
from tui.batch.options import add_general
from tui.batch.protection_options import add_vault, instant, now_or, print_json

COLUMNS = (
    "Vault",
    "Instance",
    "Health",
    "Policy",
    "Last success",
    "Next due",
    "RPO",
    "WAL lag",
    "Reason",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Per backup instance: policy, last success, next slot, RPO and health."
    add_general(parser)
    add_vault(parser, required=False)
    add_format(parser)
    parser.add_argument("--check", action="store_true", help="exit 1 when any instance is critical")
    parser.add_argument("--now", type=instant, help="evaluate as of this instant (ISO 8601)")


def _age(seconds: object) -> str:
    if not isinstance(seconds, int):
        return "-"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h{minutes:02d}m" if days else f"{hours}h{minutes:02d}m"


def run(args: argparse.Namespace, ctx: Context) -> int:
    from core.protection.status import Health, protection_status

    found = protection_status(ctx.state_dir, args.vault, now_or(args.now))
    documents = [item.to_json() for item in found]
    if args.format == "json":
        print_json(documents)
    elif documents:
        rows = [
            (
                str(d["vault"]),
                str(d["backupInstance"]),
                str(d["health"]),
                str(d["policy"]),
                str(d["lastSuccess"] or "-"),
                str(d["nextDue"] or "-"),
                _age(d["rpoSeconds"]),
                _age(d["walArchiveLagSeconds"]),
                str(d["reason"]),
            )
            for d in documents
        ]
        print("\n".join(table(rows, COLUMNS)))
    if args.check and any(item.health is Health.CRITICAL for item in found):
        return ExitCode.FAILED
    return ExitCode.OK
