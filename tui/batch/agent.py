"""`pgvault --batch agent [--once] [--vault V]`: run due backups and retention, forever."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import TYPE_CHECKING

from core.errors import ExitCode
from tui.batch.main import Context
from tui.batch.options import add_general, positive_int
from tui.batch.protection_options import add_vault, instant, now_or, print_json

if TYPE_CHECKING:
    from core.protection.agent import PassReport
    from core.protection.runs import RunOutcome


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
    from core.protection.stopping import STOP, stop_on_signals

    if args.now is not None and not args.once:
        raise InputError("--now is only allowed with --once")
    with stop_on_signals():
        return _passes(args, ctx, STOP.wake)


def _passes(args: argparse.Namespace, ctx: Context, wake: threading.Event) -> int:
    """Pass after pass (one with --once) until a stop signal; the exit code."""
    from core.protection.agent import agent_pass

    while True:
        reports = agent_pass(ctx.state_dir, args.vault, now_or(args.now))
        documents = [report.to_json() for report in reports]
        if args.once:
            print_json(documents)
            break
        _line(documents)  # one JSON line per pass, for a journal
        if wake.is_set():  # stopped during the pass
            break
        if wake.wait(args.interval):  # stopped between passes: nothing was running
            reports = []
            break
    _say_stopped(reports)
    return ExitCode.FAILED if any(report.failed for report in reports) else ExitCode.OK


def _say_stopped(reports: list[PassReport]) -> None:
    """One line on stderr when a signal stopped the agent, naming the backups and the
    copies to a secondary it cancelled."""
    from core.protection.stopping import stop_reason

    reason = stop_reason()
    if reason is None:
        return
    runs = [run for report in reports for run in report.runs]
    said = []
    backups = [r.instance for r in runs if r.record is not None and r.record.interrupted]
    if backups:
        said.append(f"cancelled the backup of {', '.join(backups)}, run again by the next pass")
    copies = [copy_cancelled(r) for r in runs if r.secondary_copy and r.secondary_copy.interrupted]
    copies += [
        f"backup {o.backup_id} of {o.instance}"
        for report in reports
        for o in report.retention
        if o.action == "copy" and o.result == "failed" and reason in (o.reason or "")
    ]
    if copies:
        said.append(f"cancelled the copy of {', '.join(copies)}, made by the next pass")
    print(f"pgvault agent: {reason}{': ' if said else ''}{'; '.join(said)}", file=sys.stderr)


def copy_cancelled(run: RunOutcome) -> str:
    """`backup B of pg1 to URL`: the copy a stop cancelled (or did not start)."""
    target = run.secondary_copy.target if run.secondary_copy else "its secondary"
    backup = run.record.backup_id if run.record else None
    return f"backup {backup} of {run.instance} to {target}"


def _line(documents: list[dict[str, object]]) -> None:
    print(json.dumps(documents, sort_keys=True), flush=True)
