"""`pgvault --batch status [--vault V] [--format json] [--check]`: is every instance safe?"""

from __future__ import annotations

import argparse
from typing import Any

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
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when any instance is critical or any vault unavailable",
    )
    parser.add_argument("--now", type=instant, help="evaluate as of this instant (ISO 8601)")


def _age(seconds: object) -> str:
    if not isinstance(seconds, int):
        return "-"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h{minutes:02d}m" if days else f"{hours}h{minutes:02d}m"


def _reason(document: dict[str, Any]) -> str:
    """The health's reason, and the agent's error of its last pass when it failed."""
    error = document.get("lastError")
    if not error:
        return str(document["reason"])
    return f"{document['reason']}; last pass failed at {error['at']}: {error['error']}"


def run(args: argparse.Namespace, ctx: Context) -> int:
    from core.protection.status import Health, status_report

    report = status_report(ctx.state_dir, args.vault, now_or(args.now))
    found = report.instances
    documents = [item.to_json() for item in found]
    documents += [gone.to_json() for gone in report.unavailable]
    if args.format == "json":
        print_json(documents)
    elif documents:
        rows = [
            (
                str(d["vault"]),
                str(d["backupInstance"] or "-"),
                str(d["health"]),
                str(d.get("policy") or "-"),
                str(d.get("lastSuccess") or "-"),
                str(d.get("nextDue") or "-"),
                _age(d.get("rpoSeconds")),
                _age(d.get("walArchiveLagSeconds")),
                _reason(d),
            )
            for d in documents
        ]
        print("\n".join(table(rows, COLUMNS)))
    # --check: nothing can be said of an unavailable vault's instances, so it is no pass
    if args.check and (report.unavailable or any(i.health is Health.CRITICAL for i in found)):
        return ExitCode.FAILED
    return ExitCode.OK
