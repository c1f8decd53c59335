"""Dispatch `pgvault --batch COMMAND ...` to one command module, with the seeds' exit codes.

Only the invoked command's module is imported, so `archive_command` pays for what it uses.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from dataclasses import dataclass
from types import ModuleType

from core import __version__
from core.errors import ExitCode, PgvaultError, own_cause
from core.secrets import log_redacted_to_stderr, redact

# name -> (module under tui.batch, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "backup": ("backup", "take a physical base backup of a PostgreSQL cluster"),
    "restore": ("restore", "restore a backup and configure point-in-time recovery"),
    "jobs": ("jobs", "list, show, watch, pause, resume and cancel jobs"),
    "wal-archive": ("wal_archive", "archive one WAL file (for archive_command)"),
    "wal-restore": ("wal_restore", "fetch one WAL file from the archive (for restore_command)"),
    "backup-list": ("backup_list", "list the backups of a server"),
    "backup-show": ("backup_show", "show one backup: metadata, objects, WAL, databases, tables"),
    "backup-delete": (
        "backup_delete",
        "delete a backup, or what a retention policy no longer needs, and its WAL",
    ),
    "backup-keep": ("backup_keep", "keep a backup from retention, release it, or show its status"),
    "backup-rehydrate": (
        "backup_rehydrate",
        "bring a backup in the archive tier back to the normal tier (a rehydrate job)",
    ),
    "copy": (
        "copy",
        "copy backups and the WAL they need to a second destination (a copy job)",
    ),
    "verify": (
        "verify",
        "check every object and checksum of a backup and its WAL; --restore-drill restores "
        "and starts it",
    ),
    "check-wal-archive": (
        "check_wal_archive",
        "check a WAL archive is safe for a new server, or that backups have all their WAL",
    ),
    "keys": ("keys", "create, show, rotate or rewrap the encryption keys of a server"),
    "demo": ("demo", "start, inspect or stop the console's throwaway demo cluster"),
    "vault": ("vault", "create, list, show or delete a vault (a destination with its policies)"),
    "policy": ("policy", "backup policies: template, create, list, show, delete, simulate, edit"),
    "backup-instance": (
        "backup_instance",
        "databases under a policy: initialize, create, list, show, delete, stop/resume "
        "protection, adhoc-backup",
    ),
    "agent": ("agent", "run due scheduled backups and retention lifecycles (--once for cron)"),
    "status": ("status", "protection status of every backup instance (--check for monitoring)"),
}

log = logging.getLogger("pgvault")
#: -vv and more let the cloud SDKs' own logging through
SDK_DETAILS_VERBOSITY = 2


@dataclass(frozen=True)
class Context:
    """What every command gets besides its own arguments."""

    state_dir: str | None = None
    #: the command's own arguments as given (after the command name)
    argv: tuple[str, ...] = ()


def usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        "usage: pgvault --batch COMMAND [ARGS ...]   (COMMAND --help for its options)",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "exit codes: 0 ok, 1 failed, 2 cloud connection failed, 3 bad input, 4 other"]
    return "\n".join(lines)


def load(name: str) -> ModuleType:
    module_name, _ = COMMANDS[name]
    return importlib.import_module(f"tui.batch.{module_name}")


def configure_logging(verbosity: int) -> None:
    """WARNING by default; each -v goes one level down, each -q one level up."""
    # SDK chatter stays out of operator output unless -vv.
    log_redacted_to_stderr(
        "%(levelname)s: %(message)s", verbosity, sdk_details=verbosity >= SDK_DETAILS_VERBOSITY
    )


def run(argv: list[str], state_dir: str | None = None) -> int:
    """Run one batch command and return its exit code; never lets a traceback escape."""
    answered = _without_command(argv)
    if answered is not None:
        return answered
    name, rest = argv[0], argv[1:]
    module = load(name)
    normalize = getattr(module, "normalize_argv", None)
    if normalize is not None:  # a command that accepts two spellings of a flag
        rest = normalize(rest)
    from tui.batch.options import BatchParser, ParseExit

    parser = BatchParser(prog=f"pgvault --batch {name}", add_help=False)
    module.add_arguments(parser)
    # A command whose list of positionals may follow its options (`copy URL SERVER --to T ID`)
    # parses them intermixed: plain argparse takes the empty list before the first option.
    parse = (
        parser.parse_intermixed_args if getattr(module, "INTERMIXED", False) else parser.parse_args
    )
    try:
        args = parse(rest)
    except ParseExit as done:
        return done.code
    except PgvaultError as exc:
        print(f"pgvault {name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    configure_logging(getattr(args, "verbose", 0) - getattr(args, "quiet", 0))
    return _run_command(module, name, args, Context(state_dir=state_dir, argv=tuple(rest)))


def _without_command(argv: list[str]) -> int | None:
    """The exit code of --help, --version or an unknown command; None for a command."""
    if not argv:
        print(f"pgvault: error: no command given\n\n{usage()}", file=sys.stderr)
        return ExitCode.INPUT
    if argv[0] in ("--help", "-h", "help"):
        print(usage())
        return ExitCode.OK
    if argv[0] in ("-V", "--version"):
        print(f"pgvault {__version__}")
        return ExitCode.OK
    if argv[0] not in COMMANDS:
        print(f"pgvault: error: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return ExitCode.INPUT
    return None


def _run_command(module: ModuleType, name: str, args: argparse.Namespace, ctx: Context) -> int:
    """The command's exit code; every error becomes its message and its code."""
    try:
        code: int = module.run(args, ctx)
        return code
    except PgvaultError as exc:
        print(f"pgvault {name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"pgvault {name}: interrupted", file=sys.stderr)
        return ExitCode.FAILED
    except BrokenPipeError:
        return ExitCode.FAILED
    except Exception as exc:
        log.debug("unexpected error", exc_info=True)
        cause = own_cause(exc)  # a PermissionError, or a PgvaultError an SDK wrapped
        if cause is not None:
            print(f"pgvault {name}: error: {cause}", file=sys.stderr)
            return cause.exit_code
        print(
            f"pgvault {name}: unexpected error: {redact(f'{type(exc).__name__}: {exc}')}"
            " (run with -vv for details)",
            file=sys.stderr,
        )
        return ExitCode.OTHER
