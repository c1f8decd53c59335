"""`pgvault --batch demo start|status|stop`: the console's throwaway demo cluster, headless.

`start` creates (or reuses) the demo PostgreSQL with sample data, WAL archived by pgvault
to the default local destination (a directory the postgres user can reach when run as
root), and starts a backup job; `stop` cancels the demo's jobs, stops the server and removes
its data directory (the backups it took stay). `pgvault --demo` does `start` and opens the
console; `pgvault --demo-stop` is `stop`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from core.errors import ExitCode
from tui.batch.main import Context
from tui.batch.options import add_general

if TYPE_CHECKING:
    from core.demo import Demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Start, inspect or stop the demo: a throwaway PostgreSQL with sample data whose WAL "
        "pgvault archives, and a backup job of it."
    )
    add_general(parser)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    parser_class = type(parser)
    for name, summary in (
        ("start", "create or reuse the demo cluster and start a backup job of it"),
        ("status", "say whether the demo cluster runs, where, and how to reach it"),
        ("stop", "cancel the demo's jobs, stop its server and remove its data"),
    ):
        sub = verbs.add_parser(name, help=summary, description=summary, add_help=False)
        if not isinstance(sub, parser_class):  # argparse makes subparsers of the parent's class
            raise TypeError(f"demo {name}: expected a {parser_class.__name__}")
        add_general(sub)
        sub.add_argument(
            "--format", choices=("console", "json"), default="console", help="output format"
        )
        if name == "start":
            sub.add_argument("--no-backup", action="store_true", help="do not start a backup job")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from core import demo

    if args.verb == "stop":
        message = demo.stop_demo(ctx.state_dir)
        _out(args, {"stopped": message != "no demo cluster", "message": message}, message)
        return ExitCode.OK
    if args.verb == "status":
        current = demo.load_demo()
        if current is None:
            _out(args, {"running": False}, "no demo cluster")
            return ExitCode.FAILED
        running = demo.is_running(current)
        info = {"running": running, **current.__dict__}
        _out(args, info, _describe(current, running))
        return ExitCode.OK if running else ExitCode.FAILED

    def step(text: str) -> None:
        if args.format != "json" and not args.quiet:
            print(text, file=sys.stderr)

    started = demo.start_demo(ctx.state_dir, step=step, backup=not args.no_backup)
    info = {
        "created": started.created,
        "job_id": started.job_id,
        "job_note": started.job_note,
        **started.demo.__dict__,
    }
    text = _describe(started.demo, True)
    if started.job_id is not None:
        text += f"\nbackup job: {started.job_id}" + (
            f" ({started.job_note})" if started.job_note else ""
        )
    _out(args, info, text)
    return ExitCode.OK


def _describe(current: Demo, running: bool) -> str:
    lines = [
        f"demo cluster: {'running' if running else 'stopped'} (data {current.data})",
        f"connect: psql -h {current.socket_dir} -p {current.port} -U postgres",
        f"destination: {current.destination} (server demo)",
        f"WAL archiving: {'on' if current.archiving else 'off'}",
    ]
    if current.note:
        lines.append(current.note)
    return "\n".join(lines)


def _out(args: argparse.Namespace, data: dict[str, object], text: str) -> None:
    if args.format == "json":
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(text)
