"""`backup` run by Barman as its post_backup_script: upload the backup Barman just took.

barman-cloud-backup's hook mode: the backup is named by Barman's environment, not by the
command line, so the flags that shape a backup taken here are refused rather than ignored.
"""

from __future__ import annotations

import argparse
import os
import sys

from core.backup.barman_hook import (
    BarmanUploadRequest,
    HookEnv,
    hook_env,
    retries_stop_on_bad_input,
)
from core.errors import ExitCode, InputError
from tui.batch.jobrun import run_as_job
from tui.batch.main import Context
from tui.batch.options import Destination, destination_from, tags_from

#: (attribute, flag) of the options that take a backup from PostgreSQL, not from Barman
_NOT_FOR_A_HOOK = (
    ("name", "-n/--name"),
    ("incremental", "--incremental"),
    ("incremental_from", "--incremental-from"),
    ("differential", "--differential"),
    ("database", "--database"),
    ("table", "--table"),
    ("all_databases", "--all-databases"),
    ("immediate_checkpoint", "--immediate-checkpoint"),
)


def run_hook(args: argparse.Namespace, ctx: Context) -> int:
    """Upload Barman's backup as a `barman-hook` job; prints its backup ID."""
    with retries_stop_on_bad_input(os.environ):
        env = hook_env(os.environ)
        if env is None:
            raise InputError("BARMAN_HOOK is empty: not run as a Barman hook script")
        where = destination_from(
            args,
            jobs=args.jobs,
            min_chunk_size=args.min_chunk_size,
            max_bandwidth=args.max_bandwidth,
        )
        return _upload(args, ctx, env, where)


def _upload(args: argparse.Namespace, ctx: Context, env: HookEnv, where: Destination) -> int:
    used = [flag for attribute, flag in _NOT_FOR_A_HOOK if getattr(args, attribute, None)]
    if used:
        raise InputError(
            f"{', '.join(used)} cannot be used when backup runs as a Barman hook script "
            "(it uploads the backup Barman took)"
        )
    request = BarmanUploadRequest(
        location=where.location,
        server=args.server_name,
        backup_dir=env.backup_dir,
        backup_id=env.backup_id,
        info_path=env.info_path,
        store_config=where.config,
        compression=args.compression,
        max_archive_size=args.max_archive_size,
        checksum_algorithm=args.checksum_algorithm,
        tags=tags_from(args),
    )
    if args.test:
        where.check()
        return ExitCode.OK
    from core.backup.job import BARMAN_HOOK
    from core.jobs.results import BackupJobResult

    job = run_as_job(args, ctx, BARMAN_HOOK, request)
    if job is not None:
        result = job.result_as(BackupJobResult)
        print(result.backup_id)
        if args.verbose:
            print(result.summary, file=sys.stderr)
    return ExitCode.OK
