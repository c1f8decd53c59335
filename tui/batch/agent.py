"""`pgvault --batch agent [--once] [--vault V]`: run due backups and retention, forever."""

from __future__ import annotations

import argparse
import json
import time

from core.errors import ExitCode
from tui.batch.main import Context
from tui.batch.options import add_general, positive_int
from tui.batch.protection_options import add_vault, instant, now_or, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Evaluate every backup instance's schedule, run due backups as jobs (one agent per "
        "slot, whatever the number of hosts), and apply retention lifecycles."
    )
    add_general(parser)
    add_vault(parser, required=False)
    parser.add_argument("--once", action="store_true", help="one pass, then exit (for cron)")
    parser.add_argument(
        "--interval",
        type=positive_int,
        default=30,
        help="seconds between passes when running forever (default: 30)",
    )
    parser.add_argument(
        "--now",
        type=instant,
        help="with --once: evaluate as if it were this instant (ISO 8601), to catch up or to test",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from core.errors import InputError
    from core.protection.agent import agent_pass

    if args.now is not None and not args.once:
        raise InputError("--now is only allowed with --once")
    while True:
        reports = agent_pass(ctx.state_dir, args.vault, now_or(args.now))
        documents = [report.to_json() for report in reports]
        if not args.once:  # one JSON line per pass, for a journal
            print(json.dumps(documents, sort_keys=True), flush=True)
            time.sleep(args.interval)
            continue
        print_json(documents)
        return ExitCode.FAILED if any(report.failed for report in reports) else ExitCode.OK
