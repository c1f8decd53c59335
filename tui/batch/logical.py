"""The logical side of `backup` and `restore`: `--database NAME [--table PATTERN ...]`.

Flags that only mean something for one kind of backup are refused for the other (exit 3),
never silently ignored.
"""

from __future__ import annotations

import argparse
import os
import sys

from core.errors import ExitCode, InputError
from core.logical.request import STAGING_LIMIT
from core.sizes import size_argument
from tui.batch.jobrun import run_as_job
from tui.batch.main import Context
from tui.batch.options import (
    Destination,
    database_name,
    print_json,
    size,
    tags_from,
    tcp_port,
)


class _OneDatabase(argparse.Action):
    """--database given once: argparse would keep the last of several, the others ignored."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        held = getattr(namespace, self.dest)
        if held is not None:
            raise argparse.ArgumentError(
                self,
                f"given twice ({held!r}, {values!r}): a logical backup or restore takes one "
                "database; --all-databases takes every one",
            )
        setattr(namespace, self.dest, values)


def _database_flag(group: argparse._ArgumentGroup, text: str) -> None:
    group.add_argument(
        "--database", metavar="NAME", type=database_name, action=_OneDatabase, help=text
    )


def add_backup_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "Logical backups (pg_dump's directory format; see README, Logical backups)"
    )
    _database_flag(group, "take a logical backup of this database")
    group.add_argument(
        "--table",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only these tables (pg_dump -t patterns, repeatable; each must match a table)",
    )
    group.add_argument(
        "--all-databases",
        action="store_true",
        help="every database (each its own snapshot) and pg_dumpall --globals-only",
    )
    _add_common(group)
    group.add_argument(
        "--staging-limit",
        type=size,
        help="finished dump files waiting for upload at most; pg_dump is stopped beyond it "
        f"(default: {size_argument(STAGING_LIMIT)}, {STAGING_LIMIT} bytes)",
    )


def _add_common(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--staging-dir",
        metavar="DIR",
        help="local directory for dump files in transit (default: the temporary directory)",
    )
    group.add_argument(
        "--pg-bindir",
        metavar="DIR",
        help="where pg_dump/pg_restore are (default: the server's major version, searched)",
    )


def add_restore_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "Logical restores (into a running server; BACKUP is a logical backup, no RECOVERY_DIR)"
    )
    _database_flag(group, "the backup's database to restore")
    group.add_argument(
        "--all-databases",
        action="store_true",
        help="an --all-databases backup whole: its globals.sql (roles, tablespaces; those "
        "that exist are kept), then every database under its own name",
    )
    group.add_argument(
        "--new-db-name",
        metavar="NEW",
        type=database_name,
        help="restore the database under this new name",
    )
    group.add_argument(
        "--into-db",
        metavar="EXISTING",
        type=database_name,
        help="restore the --table tables into this existing database",
    )
    group.add_argument(
        "--table",
        action="append",
        default=[],
        metavar="PATTERN",
        help="restore only these tables, with their indexes, constraints and owned sequences",
    )
    group.add_argument(
        "--clean",
        action="store_true",
        help="replace an existing database (once the new one is complete) or existing tables "
        "(in one transaction: a failure or a kill leaves them as they were; pg_restore then "
        "runs serially, -J does not apply) instead of refusing",
    )
    group.add_argument(
        "--no-foreign-keys",
        action="store_true",
        help="leave out the foreign keys (of the tables, or of the database restored)",
    )
    _add_common(group)
    pg = parser.add_argument_group("PostgreSQL connection (logical restores)")
    # -h is help here, as in barman-cloud-restore: the host is --host only.
    pg.add_argument("--host", help="host or Unix socket (default: libpq settings)")
    pg.add_argument(
        "-p",
        "--port",
        type=tcp_port,
        help="the target server's port: for a physical restore, the port the restored server "
        "listens on, written into its postgresql.auto.conf (default: the source's, which cannot "
        "start beside the source on the same host); for a logical restore, the port of the "
        "running server to restore into (default: libpq settings)",
    )
    pg.add_argument("-U", "--user", help="user name (default: libpq settings)")
    pg.add_argument(
        "-d", "--dbname", default="postgres", help='maintenance database (default: "postgres")'
    )


def is_logical_restore(args: argparse.Namespace) -> bool:
    from core.logical.layout import is_logical_id

    chosen = (
        args.database,
        args.new_db_name,
        args.into_db,
        args.table,
        args.clean,
        args.all_databases,
    )
    # without RECOVERY_DIR, a flag only a logical restore takes names one (a backup's name
    # does not say which kind it is)
    connection = (args.host, args.user, args.dbname != "postgres", args.staging_dir, args.pg_bindir)
    return (
        is_logical_id(args.backup_id)
        or any(chosen)
        or args.no_foreign_keys
        or (not args.recovery_dir and any(connection))
    )


def _refuse(used: list[str], what: str) -> None:
    if used:
        raise InputError(f"{', '.join(used)}: not available for {what}")


def _abs(path: str | None) -> str | None:
    return os.path.abspath(path) if path else None  # a detached job runs elsewhere


def run_backup(args: argparse.Namespace, ctx: Context, where: Destination) -> int:
    physical = {
        "--incremental": args.incremental,
        "--incremental-from": args.incremental_from,
        "--differential": args.differential,
        "--immediate-checkpoint": args.immediate_checkpoint,
        "--bzip2/--snappy": args.compression in ("bzip2", "snappy"),
        "-S": args.max_archive_size != size("100GB"),
        "--keepalive-interval": args.keepalive_interval != 60,  # noqa: PLR2004 - the default
        "--checksum-algorithm": args.checksum_algorithm != "crc32c",
    }
    _refuse([flag for flag, value in physical.items() if value], "a logical backup")
    if not args.database and not args.all_databases:
        raise InputError("--table needs --database NAME: the database the tables are in")
    from core.jobs.results import LogicalJobResult
    from core.logical.jobs import LOGICAL_BACKUP
    from core.logical.request import LogicalBackupRequest
    from core.postgres.connection import ConnectionParams

    request = LogicalBackupRequest(
        location=where.location,
        server=args.server_name,
        database=args.database,
        all_databases=args.all_databases,
        store_config=where.config,
        connection=ConnectionParams(args.host, args.port, args.user, args.dbname),
        tables=tuple(args.table),
        jobs=args.jobs,
        compression=args.compression,
        name=args.name,
        staging_dir=_abs(args.staging_dir),
        staging_limit=STAGING_LIMIT if args.staging_limit is None else args.staging_limit,
        pg_bindir=_abs(args.pg_bindir),
        tags=tags_from(args),
    )
    if args.test:  # after every flag is checked, as for a physical backup
        where.check()
        return ExitCode.OK
    job = run_as_job(args, ctx, LOGICAL_BACKUP, request)
    if job is not None:
        result = job.result_as(LogicalJobResult)
        print(result.backup_id)
        if args.verbose:
            print(result.summary, file=sys.stderr)
    return ExitCode.OK


def run_restore(args: argparse.Namespace, ctx: Context, where: Destination) -> int:
    physical = {
        "RECOVERY_DIR": args.recovery_dir,
        "--tablespace": args.tablespace,
        "--target-*": any(
            getattr(args, f"target_{t}")
            for t in ("time", "lsn", "xid", "name", "immediate", "tli", "action")
        )
        or args.target_exclusive,
        "--pgvault-command": args.pgvault_command,
        "--wal-restore-dir": args.wal_restore_dir,
        "--no-sync": args.no_sync,
        "--wal-credentials-via": args.wal_credentials != "file",
        "--wal-prefetch": args.wal_prefetch != 4,  # noqa: PLR2004 - the default
        "--archive-mode": args.archive_mode != "hold",
    }
    _refuse([flag for flag, value in physical.items() if value], "a logical restore")
    from core.jobs.results import LogicalJobResult
    from core.logical.jobs import LOGICAL_RESTORE
    from core.logical.restore import LogicalRestoreRequest
    from core.postgres.connection import ConnectionParams

    request = LogicalRestoreRequest(
        location=where.location,
        server=args.server_name,
        backup=args.backup_id,
        store_config=where.config,
        connection=ConnectionParams(
            args.host, None if args.port is None else str(args.port), args.user, args.dbname
        ),
        database=args.database,
        new_db_name=args.new_db_name,
        into_db=args.into_db,
        tables=tuple(args.table),
        clean=args.clean,
        foreign_keys=not args.no_foreign_keys,
        jobs=args.jobs,
        staging_dir=_abs(args.staging_dir),
        pg_bindir=_abs(args.pg_bindir),
        all_databases=args.all_databases,
    )
    if args.test:
        where.check()
        return ExitCode.OK
    job = run_as_job(args, ctx, LOGICAL_RESTORE, request)
    if job is not None:
        result = job.result_as(LogicalJobResult)
        if args.format == "json":  # the job's result, as for a physical restore
            print_json(result.to_json())
            return ExitCode.OK
        print(result.target_database)
        if args.verbose:
            print(result.summary, file=sys.stderr)
    return ExitCode.OK


def refuse_logical_flags(args: argparse.Namespace) -> None:
    """A physical restore: the logical-only flags are refused."""
    used = {
        "--staging-dir": args.staging_dir,
        "--pg-bindir": args.pg_bindir,
        "--host/-U": args.host or args.user,
        "-d": args.dbname != "postgres",
    }
    _refuse([flag for flag, value in used.items() if value], "a physical restore")
