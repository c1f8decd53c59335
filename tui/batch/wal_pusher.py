"""The fast path's background pusher process (internal): `python -m tui.batch.wal_pusher`.

`wal-archive --async` starts it detached, in a session of its own, with its parsed flags as
JSON on stdin: never on the command line, where credentials inside a URL would show in ps.
Its output goes to the spool's pusher.log.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from core.errors import PgvaultError
from core.secrets import RedactingFormatter
from core.wal.spool import ArchiveSpool

if TYPE_CHECKING:
    from core.jobs.store import JobStore

TAG_FLAGS = ("tags", "tags_repeated", "history_tags", "history_tags_repeated")


def start_pusher(
    args: argparse.Namespace, wal_dir: str, spool: ArchiveSpool, state_dir: str | None
) -> None:
    """Start a detached pusher for this spool (it exits at once if one already runs)."""
    payload = json.dumps(
        {"args": vars(args), "wal_dir": wal_dir, "spool": spool.root, "state_dir": state_dir}
    )
    log_fd = os.open(spool.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "tui.batch.wal_pusher"],
            stdin=subprocess.PIPE,
            stdout=log_fd,
            stderr=log_fd,
            cwd="/",
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(log_fd)
    assert process.stdin is not None
    process.stdin.write(payload.encode())
    process.stdin.close()


def _namespace(raw: dict[str, object]) -> argparse.Namespace:
    args = argparse.Namespace(**raw)
    for name in TAG_FLAGS:
        value = getattr(args, name, None)
        if value:
            setattr(args, name, [tuple(pair) for pair in value])  # JSON made them lists
    return args


def _configure_logging(verbosity: int) -> None:
    level = max(logging.DEBUG, min(logging.CRITICAL, logging.WARNING - 10 * verbosity))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter(f"%(asctime)s pusher[{os.getpid()}] %(levelname)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "azure", "google", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def fail_ready_files(spool: ArchiveSpool, wal_dir: str, exc: PgvaultError) -> None:
    """Write the error for every file waiting to be archived."""
    from core.wal.files import FileIdentity

    status = os.path.join(wal_dir, "archive_status")
    try:
        names = [n[: -len(".ready")] for n in os.listdir(status) if n.endswith(".ready")]
    except OSError:
        return
    for name in names:
        try:
            identity = FileIdentity.of(os.stat(os.path.join(wal_dir, name)))
        except OSError:
            continue
        spool.write_error(name, identity, int(exc.exit_code), str(exc))


def main() -> int:
    from core.wal.jobs import recorded_batches
    from core.wal.pusher import BatchRunner, Pusher, PusherSettings, run_unrecorded
    from tui.batch.options import location_from
    from tui.batch.wal_archive import open_archiver

    try:
        payload = json.loads(sys.stdin.read())
        args = _namespace(payload["args"])
        wal_dir, root = str(payload["wal_dir"]), str(payload["spool"])
    except (ValueError, KeyError, TypeError) as exc:
        print(f"pgvault pusher: bad start request: {exc}", file=sys.stderr)
        return 3
    _configure_logging(int(args.verbose) - int(args.quiet))
    log = logging.getLogger("pgvault.wal.pusher")
    spool = ArchiveSpool(root)
    try:
        archiver = open_archiver(args, jobs=args.max_concurrency)
    except PgvaultError as exc:
        # archive_command waits for its file: tell it why nothing will come.
        log.error("%s", exc)
        fail_ready_files(spool, wal_dir, exc)
        return int(exc.exit_code)
    settings = PusherSettings(jobs=args.jobs, idle_exit=float(args.pusher_idle))
    try:
        with archiver.store, _job_store(payload.get("state_dir")) as jobs:
            runner: BatchRunner = run_unrecorded
            if jobs is not None:
                destination = location_from(args).display()
                runner = recorded_batches(jobs, args.server_name, destination, root)
            Pusher(archiver, spool, wal_dir, settings, runner).run()
    except PgvaultError as exc:
        log.error("%s", exc)
        return int(exc.exit_code)
    except Exception:
        log.exception("the pusher failed")
        return 4
    return 0


@contextlib.contextmanager
def _job_store(state_dir: object) -> Iterator[JobStore | None]:
    """The job store that records the batches, or None (archiving goes on unrecorded)."""
    from core.jobs.store import JobStore

    try:
        store = JobStore.open(state_dir if isinstance(state_dir, str) else None)
    except (OSError, sqlite3.Error, PgvaultError) as exc:
        logging.getLogger("pgvault.wal.pusher").warning(
            "batches are not recorded as jobs: the job store cannot be opened (%s)", exc
        )
        yield None
        return
    with store:
        yield store


if __name__ == "__main__":
    sys.exit(main())
