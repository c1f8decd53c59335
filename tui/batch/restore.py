"""`pgvault --batch restore [flags] SOURCE_URL SERVER_NAME BACKUP RECOVERY_DIR`.

barman-cloud-restore's surface (BACKUP an ID, a name, latest/oldest or auto;
`--tablespace NAME:LOCATION`; `--target-tli/--target-lsn/--target-time` to choose with
auto), plus what makes it a point-in-time restore: the other recovery targets, the action
at the target, and restore_command written with recovery.signal. Exit codes: 0 restored; 1
the restore failed (backup not found or not restorable, a damaged archive, no backup before
the target; with `--delta`, a server running on RECOVERY_DIR or a directory of another
cluster without `--force`); 2 the cloud could not be reached; 3 bad input, including a
recovery directory or tablespace location that is not empty (without `--delta`); 4
anything else.

A logical backup (an ID ending in L, or `--database`, `--table`, `--new-db-name`,
`--into-db`) restores into a running server instead, with no RECOVERY_DIR: tui.batch.logical.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from core.errors import ExitCode, InputError
from tui.batch.catalog_options import add_format
from tui.batch.encryption_options import add_unlock, apply_unlock
from tui.batch.jobrun import add_job_options, run_as_job
from tui.batch.logical import (
    add_restore_arguments,
    is_logical_restore,
    refuse_logical_flags,
    run_restore,
)
from tui.batch.main import Context
from tui.batch.options import (
    add_cloud,
    add_general,
    backup_reference,
    destination_from,
    non_negative_int,
    positive_int,
    print_json,
    refuse_given,
    size,
)
from tui.batch.snapshot_options import add_recovery_arguments, snapshot_recovery

if TYPE_CHECKING:
    from core.restore import RestoreRequest
    from core.restore.targets import RecoveryTarget

DEFAULT_JOBS = 4


def _tablespace_rule(text: str) -> tuple[str, str]:
    name, sep, location = text.partition(":")
    if not sep or not name or not location:
        raise argparse.ArgumentTypeError(
            f"invalid tablespace relocation rule {text!r}: the syntax is NAME:LOCATION"
        )
    return name, location


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Restore a backup into an empty directory and configure PostgreSQL's recovery "
        "(restore_command running pgvault wal-restore, the recovery target, recovery.signal): "
        "start PostgreSQL on RECOVERY_DIR and it replays the WAL archive to the target."
    )
    parser.add_argument(
        "url",
        metavar="SOURCE_URL",
        help="s3://, gs://, azure://, https://ACCOUNT.blob.core.windows.net/ or file://",
    )
    parser.add_argument("server_name", metavar="SERVER_NAME", help="the name of the server")
    parser.add_argument(
        "backup_id",
        type=backup_reference,
        metavar="BACKUP",
        help="a backup ID, a backup name, latest, oldest, or auto (the newest "
        "backup that ended before --target-time or --target-lsn; with --target-xid or "
        "--target-name, the newest backup: name an older one if the target may be older)",
    )
    parser.add_argument(
        "recovery_dir",
        metavar="RECOVERY_DIR",
        nargs="?",
        help="the data directory to create (empty; with --delta an existing one); none for a "
        "logical backup",
    )
    add_general(parser)
    add_cloud(parser)
    parser.add_argument(
        "--tablespace",
        action="append",
        type=_tablespace_rule,
        default=[],
        metavar="NAME:LOCATION",
        help="restore tablespace NAME to LOCATION instead of its original place (repeatable)",
    )
    parser.add_argument(
        "-J",
        "--jobs",
        type=positive_int,
        default=DEFAULT_JOBS,
        help=f"ranged downloads in flight, over every archive (default: {DEFAULT_JOBS}); also a "
        "logical restore's pg_restore -j (not --table --clean: one transaction, serial)",
    )
    parser.add_argument(
        "--max-bandwidth",
        type=size,
        help="the maximum bytes per second downloaded, shared by all downloads of the restore "
        "(default: no limit; restore_command's WAL is not capped)",
    )
    _add_targets(parser)
    _add_restore_command(parser)
    _add_restored_server(parser)
    add_format(parser)
    add_job_options(parser)
    add_unlock(parser)
    add_restore_arguments(parser)
    _add_rehydrate(parser)
    add_recovery_arguments(parser)


def _add_rehydrate(parser: argparse.ArgumentParser) -> None:
    from tui.batch.backup_rehydrate import add_poll

    group = parser.add_argument_group("Archived backups")
    group.add_argument(
        "--rehydrate",
        action="store_true",
        help="when the backup is in the archive tier, first run a rehydrate job that brings "
        "it back to the normal tier (polling until it is), then restore",
    )
    add_poll(group, "--rehydrate-poll")  # type: ignore[arg-type]


def _add_targets(parser: argparse.ArgumentParser) -> None:
    targets = parser.add_argument_group("Recovery target (at most one; default: all the WAL)")
    target = targets.add_mutually_exclusive_group()
    target.add_argument("--target-time", help="a time, ISO 8601 (local time without an offset)")
    target.add_argument("--target-lsn", help="a WAL location, e.g. 0/3000060")
    target.add_argument("--target-xid", help="a transaction ID: stop at its commit")
    target.add_argument("--target-name", help="a restore point (pg_create_restore_point)")
    target.add_argument(
        "--target-immediate",
        action="store_true",
        default=None,
        help="stop as soon as the backup is consistent",
    )
    targets.add_argument(
        "--target-tli",
        help="the timeline to recover along: a number, current or latest (default: "
        "PostgreSQL's, latest since 12); latest/auto choose only a backup on its history",
    )
    targets.add_argument(
        "--target-action",
        choices=("pause", "promote", "shutdown"),
        help="what the server does at the target (default: pause, so that you can check "
        "the data and then run pg_wal_replay_resume() to promote)",
    )
    targets.add_argument(
        "--target-exclusive",
        action="store_true",
        help="stop just before the target time, LSN or transaction instead of just after",
    )


def _add_restore_command(parser: argparse.ArgumentParser) -> None:
    wal = parser.add_argument_group("restore_command")
    wal.add_argument(
        "--pgvault-command",
        metavar="PATH",
        help="the pgvault executable restore_command runs (default: this pgvault); it must "
        "be executable by the data directory's owner",
    )
    wal.add_argument(
        "--wal-credentials-via",
        dest="wal_credentials",
        choices=("file", "environment"),
        default="file",
        help="file: copy the credentials this restore uses into a 0600 file restore_command "
        "reads (default); environment: the server's environment provides them",
    )
    wal.add_argument(
        "--wal-restore-dir",
        metavar="DIR",
        help="where restore_command's credentials file and WAL spool go, outside the data "
        "directory (default: RECOVERY_DIR.pgvault)",
    )
    wal.add_argument(
        "--wal-prefetch",
        type=non_negative_int,
        default=4,
        metavar="N",
        help="restore_command fetches N segments at once (its -p; default: 4, 0 disables)",
    )


def _add_restored_server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--archive-mode",
        choices=("hold", "preserve", "off"),
        default="hold",
        help="hold (default): archive_command = 'false', the restored server keeps its WAL "
        "until you set archive_command, so that it never writes into the backup's archive by "
        "accident; preserve: the backup's archiving settings; off: archive_mode = off",
    )
    parser.add_argument(
        "--no-sync", action="store_true", help="do not fsync the restored files (faster, unsafe)"
    )
    parser.add_argument(
        "--accept-wal-gap",
        action="store_true",
        help="restore even when a WAL segment the restore needs is missing: one of the "
        "backup's own (the server never becomes consistent) or one after it, before the newest "
        "archived, that recovery would stop at short of the target (or, without a target, of "
        "the archive's end); by default the restore fails naming the first missing segment",
    )
    parser.add_argument(
        "--delta",
        action="store_true",
        help="restore into an existing data directory of the backup's cluster (a standby or "
        "a failed primary to re-seed, its server stopped): files whose size and checksum match "
        "the backup are kept, the others fetched, files the backup does not hold removed",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --delta: restore even over a directory of another cluster (another system "
        "identifier) or one that holds no global/pg_control",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    snapshot = snapshot_recovery(args)
    where = destination_from(args, jobs=args.jobs, max_download_bandwidth=args.max_bandwidth)
    if is_logical_restore(args):
        refuse_given(args, ("snapshot_recovery_instance",), "to a logical restore")
        refuse_given(
            args, ("delta", "force", "rehydrate"), "to a logical restore (a physical restore's)"
        )
        apply_unlock(args)  # an encrypted server's logical backup is opened the same way
        return run_restore(args, ctx, where)
    refuse_logical_flags(args)
    from core.restore import RestoreRequest, default_pgvault_command

    target = _target(args)
    if args.test:  # after the targets are checked: a bad one is exit 3 with -t too
        where.check()
        return ExitCode.OK
    if not args.recovery_dir:
        raise InputError("the following arguments are required: RECOVERY_DIR")
    apply_unlock(args)
    # Absolute paths: a detached job runs in another process.
    request = RestoreRequest(
        location=where.location,
        server=args.server_name,
        backup=args.backup_id,
        recovery_dir=os.path.abspath(args.recovery_dir),
        store_config=where.config,
        tablespaces=tuple((name, os.path.abspath(path)) for name, path in args.tablespace),
        target=target,
        pgvault_command=args.pgvault_command or default_pgvault_command(),
        wal_credentials=args.wal_credentials,
        wal_restore_dir=os.path.abspath(args.wal_restore_dir) if args.wal_restore_dir else None,
        wal_prefetch=args.wal_prefetch,
        archive_mode=args.archive_mode,
        sync=not args.no_sync,
        port=args.port,
        accept_wal_gap=args.accept_wal_gap,
        delta=args.delta,
        force=args.force,
        snapshot=snapshot,
    )
    from core.jobs.results import RestoreJobResult
    from core.restore.job import RESTORE

    if args.rehydrate:
        _rehydrate_first(args, ctx, request)
    job = run_as_job(args, ctx, RESTORE, request)
    if job is not None:
        result = job.result_as(RestoreJobResult)
        if args.format == "json":
            print_json(result.to_json())
            return ExitCode.OK
        print(result.backup_id)
        if args.verbose:
            for line in result.report:
                print(line, file=sys.stderr)
    return ExitCode.OK


def _rehydrate_first(args: argparse.Namespace, ctx: Context, request: RestoreRequest) -> None:
    """`--rehydrate`: a rehydrate job in the foreground, then (the caller) the restore job."""
    from core.catalog.rehydrate import REHYDRATE, RehydrateRequest
    from core.catalog.rehydrate import validate_request as validate_rehydrate
    from core.restore import validate_request

    if args.detach:
        raise InputError("--rehydrate runs in the foreground: use backup-rehydrate --detach first")
    validate_request(request)  # a bad restore must not wait hours for a rehydration first
    rehydrate = RehydrateRequest(
        location=request.location,
        server=request.server,
        backup=request.backup,
        store_config=request.store_config,
        poll_seconds=args.rehydrate_poll,
    )
    validate_rehydrate(rehydrate)
    run_as_job(args, ctx, REHYDRATE, rehydrate)


def _target(args: argparse.Namespace) -> RecoveryTarget:
    from core.restore import make_target

    return make_target(
        time=args.target_time,
        lsn=args.target_lsn,
        xid=args.target_xid,
        name=args.target_name,
        immediate=bool(args.target_immediate),
        timeline=args.target_tli,
        action=args.target_action,
        exclusive=args.target_exclusive,
    )
