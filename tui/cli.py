"""The `pgvault` entry point: the console by default, `--batch COMMAND` for scripts."""

from __future__ import annotations

import gc
import os
import shlex
import sys
from typing import TYPE_CHECKING

from core import __version__

if TYPE_CHECKING:
    import argparse

CONSOLE_USAGE = """\
usage: pgvault [--version] [--state-dir DIR] [--read-only] [--demo]
               [--encryption-passphrase-file F] [--identity-file F ...] [DESTINATION_URL ...]
       pgvault [--state-dir DIR] --demo-stop
       pgvault [--state-dir DIR] --batch COMMAND [ARGS ...]

Opens the pgvault console. With --batch, runs COMMAND headless; `pgvault --batch --help`
lists the commands.
"""


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the batch face without importing Textual, or open the console."""
    args = list(sys.argv[1:] if argv is None else argv)
    state_dir: str | None = None
    # Global options may precede --batch; everything after --batch belongs to the command.
    head: list[str] = []
    while args and args[0] != "--batch":
        head.append(args.pop(0))
    if args and args[0] == "--batch":
        args.pop(0)
        if args[:1] in (["wal-archive"], ["wal-restore"]):
            # PostgreSQL starts one of these per WAL file and it exits after that file: the
            # collector's passes over the imports cost ~10 ms a call and have nothing to free.
            gc.disable()
        if args[:1] == ["wal-archive"] and "--async" in args:
            # archive_command's fast path: a file the pusher already stored is acknowledged
            # before argparse or any storage code is even imported.
            from tui.batch.wal_fast import only_state_dir, quick_ack

            if only_state_dir(head) and quick_ack(args[1:]):
                return 0
        _register_secrets()
        state_dir = _take_state_dir(head)
        if head:
            print(
                f"pgvault: unexpected arguments before --batch: {' '.join(head)}", file=sys.stderr
            )
            return 3
        from tui.batch.main import run

        return run(args, state_dir=state_dir)
    mistaken = _batch_command_without_batch(head)
    if mistaken:
        print(mistaken, file=sys.stderr)
        return 3
    _register_secrets()
    return _console(head)


def _batch_command_without_batch(head: list[str]) -> str | None:
    """'did you mean ...' when the first word is a batch command (the console would take it
    for a destination)."""
    words = [
        i
        for i, arg in enumerate(head)
        if not arg.startswith("-") and (i == 0 or head[i - 1] != "--state-dir")
    ]
    if not words:
        return None
    from tui.batch.main import COMMANDS

    at = words[0]
    if head[at] not in COMMANDS:
        return None
    suggestion = shlex.join(["pgvault", *head[:at], "--batch", *head[at:]])
    return f"pgvault: {head[at]} is a batch command: did you mean {suggestion}"


def _register_secrets() -> None:
    """The environment's secrets, masked from here on (after the fast acknowledgement,
    which must not even load logging)."""
    from core.secrets import register_environment_secrets

    register_environment_secrets()


def _take_state_dir(head: list[str]) -> str | None:
    for i, arg in enumerate(head):
        if arg == "--state-dir" and i + 1 < len(head):
            value = head[i + 1]
            del head[i : i + 2]
            return value
        if arg.startswith("--state-dir="):
            del head[i]
            return arg.split("=", 1)[1]
    return None


def _console(argv: list[str]) -> int:
    import argparse

    # argparse prints "usage: " itself before the usage it is given.
    usage = CONSOLE_USAGE.removeprefix("usage: ")
    parser = argparse.ArgumentParser(prog="pgvault", usage=usage, add_help=True)
    parser.add_argument("--version", action="version", version=f"pgvault {__version__}")
    parser.add_argument("--state-dir", help="job store directory (default: XDG state dir)")
    parser.add_argument(
        "--read-only", action="store_true", help="hide every action that changes anything"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="start a throwaway PostgreSQL with sample data and back it up",
    )
    parser.add_argument(
        "--demo-stop",
        action="store_true",
        help="stop and remove the demo cluster (its backups stay), then exit",
    )
    parser.add_argument(
        "destinations",
        nargs="*",
        metavar="DESTINATION_URL",
        help="catalogs to browse (default: the local directory destination)",
    )
    from core.errors import PgvaultError
    from tui.batch.encryption_options import add_unlock, refuse_passphrase_value

    add_unlock(parser)
    refuse_passphrase_value(parser)
    try:
        options = parser.parse_args(argv)
        _hold_keys(options)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 3
    except PgvaultError as exc:
        print(f"pgvault: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    if options.demo_stop:
        from tui.batch.main import run

        return run(["demo", "stop"], state_dir=options.state_dir)
    from tui.app import run_console

    code = run_console(
        state_dir=options.state_dir,
        read_only=options.read_only,
        demo=options.demo,
        destinations=options.destinations,
    )
    note = demo_still_running(options.state_dir)
    if note:
        print(note, file=sys.stderr)
    return code


def _hold_keys(options: argparse.Namespace) -> None:
    """The passphrase or identity files given: put in this process's environment, as if
    the console had been started with PGVAULT_ENCRYPTION_*, so that its own reads and every
    job it starts have them (never its command line)."""
    if not (options.encryption_passphrase_file or options.identity_file):
        return
    from core.encryption import credentials_environment
    from tui.batch.encryption_options import read_unlock

    os.environ.update(credentials_environment(read_unlock(options)))


def demo_still_running(state_dir: str | None) -> str | None:
    """What to tell an operator leaving the console while the demo's PostgreSQL runs."""
    from core.demo import is_running, load_demo

    demo = load_demo()
    if demo is None or not is_running(demo):
        return None
    stop = ["pgvault", *(["--state-dir", state_dir] if state_dir else []), "--demo-stop"]
    return (
        f"the demo PostgreSQL is still running (port {demo.port}, socket {demo.socket_dir}) "
        f"with its jobs; stop and remove it (its backups stay) with: {shlex.join(stop)}"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
