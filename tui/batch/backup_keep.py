"""`pgvault --batch backup-keep [flags] SOURCE_URL SERVER_NAME BACKUP (--target T | -r | -s)`.

barman-cloud-backup-keep's flags: `--target full|standalone` adds the annotation (DONE
backups only), `-r/--release` removes it, `-s/--status` prints `Keep: full|standalone|nokeep`.
The issue's spelling `-r full|standalone` is accepted too: `-r` followed by a target word is
`--target`; `-r` alone is barman's `--release`.
"""

from __future__ import annotations

import argparse
import logging

from core.errors import ExitCode
from tui.batch.catalog_options import add_source, connectivity_test, opened
from tui.batch.main import Context
from tui.batch.options import backup_reference

log = logging.getLogger("pgvault.keep")
TARGETS = ("full", "standalone")


def normalize_argv(argv: list[str]) -> list[str]:
    """`-r full` / `-rfull` -> `--target full`; every other `-r` stays barman's release."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out += argv[i:]
            break
        if arg == "-r" and i + 1 < len(argv) and argv[i + 1] in TARGETS:
            out += ["--target", argv[i + 1]]
            i += 2
            continue
        if arg.startswith("-r") and arg[2:] in TARGETS:
            out += ["--target", arg[2:]]
        else:
            out.append(arg)
        i += 1
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source(
        parser,
        "Keep a backup from retention (full: with every WAL after it; standalone: with the "
        "WAL to make it consistent), release it, or print its keep status.",
    )
    parser.add_argument(
        "backup_id",
        type=backup_reference,
        metavar="BACKUP",
        help="a backup ID, a backup name, or latest/oldest/last-failed",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--target",
        choices=TARGETS,
        help="keep the backup: full (point-in-time recovery from it stays possible) or "
        "standalone (only the WAL needed to make it consistent); also written -r TARGET",
    )
    action.add_argument(
        "-r",
        "--release",
        action="store_true",
        help="remove the keep annotation (the backup becomes subject to retention)",
    )
    action.add_argument(
        "-s", "--status", action="store_true", help="print the keep status of the backup"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from core.logical.layout import refuse_logical

    refuse_logical(args.backup_id, "backup-keep")
    if args.test:
        connectivity_test(args)
        return ExitCode.OK
    from core.catalog.keep import NOKEEP, read_keep, release_keep, set_keep
    from core.catalog.reader import Catalog

    with opened(args) as store:
        info = Catalog(store, args.server_name).resolve(args.backup_id)
        if args.status:
            print(f"Keep: {read_keep(store, args.server_name, info.backup_id) or NOKEEP}")
        elif args.release:
            if not release_keep(store, args.server_name, info.backup_id):
                log.info("backup %s had no keep annotation", info.backup_id)
        else:
            set_keep(store, args.server_name, info, args.target)
            log.info("backup %s: keep:%s", info.backup_id, args.target)
    return ExitCode.OK
