"""The fast path's background pusher process (internal): `python -m core.wal.daemon`.

archive_command starts it (core.wal.archive_command.start_pusher) detached, in a session of
its own, with its PusherRequest on stdin: never on the command line, where credentials of
the destination would show in ps. Its output goes to the spool's pusher.log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import sqlite3
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from core.encryption import preload_cipher
from core.errors import ExitCode, PgvaultError, own_cause
from core.secrets import log_redacted_to_stderr, register_environment_secrets
from core.wal.archive_command import PusherRequest, open_archiver, open_secondary
from core.wal.spool import ArchiveSpool

if TYPE_CHECKING:
    from core.jobs.store import JobStore

log = logging.getLogger("pgvault.wal.pusher")


def _read_request() -> PusherRequest:
    # The pipe is written by the archive_command process that started this one.
    request = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - our parent's pipe only
    if not isinstance(request, PusherRequest):
        raise TypeError(f"expected a PusherRequest, got {type(request).__name__}")
    # The parent knew these secrets from the URL it parsed: mask them in this log too.
    request.archive.location.credentials.register()
    return request


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


def run_pusher(request: PusherRequest) -> int:
    """Push every ready file of the request's pg_wal until idle; the exit code."""
    spool = ArchiveSpool(request.spool)
    try:
        _push_until_idle(request, spool)
    except Exception as exc:
        failure = own_cause(exc)
        if failure is None:
            log.exception("the pusher failed")
            failure = spool.unexpected(exc)
        else:
            log.error("%s", failure)
        # archive_command waits for its file: tell it at once why nothing will come, as a
        # synchronous archive_command would (a directory postgres cannot enter, say).
        fail_ready_files(spool, request.wal_dir, failure)
        return int(failure.exit_code)
    return int(ExitCode.OK)


def _push_until_idle(request: PusherRequest, spool: ArchiveSpool) -> None:
    from core.wal.jobs import recorded_batches
    from core.wal.pusher import BatchRunner, Pusher, run_unrecorded

    # The light store: archive_command waits for this process's first upload.
    archiver = open_archiver(request.archive, light=True)
    with archiver.store:
        secondary = open_secondary(request.archive, light=True)
        if archiver.recipient is not None:
            preload_cipher()  # while the job store opens and archive_status is scanned
        with _job_store(request.state_dir) as jobs:
            runner: BatchRunner = run_unrecorded
            if jobs is not None:
                destination = request.archive.location.display()
                runner = recorded_batches(jobs, request.archive.server, destination, spool.root)
            pusher = Pusher(archiver, spool, request.wal_dir, request.pusher, runner, secondary)
            try:
                pusher.run()
            finally:
                if secondary is not None:
                    secondary.store.close()


@contextlib.contextmanager
def _job_store(state_dir: str | None) -> Iterator[JobStore | None]:
    """The job store that records the batches, or None (archiving goes on unrecorded)."""
    from core.jobs.store import JobStore

    try:
        store = JobStore.open(state_dir)
    except (OSError, sqlite3.Error, PgvaultError) as exc:
        log.warning("batches are not recorded as jobs: the job store cannot be opened (%s)", exc)
        yield None
        return
    with store:
        yield store


def main() -> int:
    try:
        request = _read_request()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError) as exc:
        print(f"pgvault pusher: bad start request: {exc}", file=sys.stderr)
        return int(ExitCode.INPUT)
    register_environment_secrets()
    log_redacted_to_stderr(
        f"%(asctime)s pusher[{os.getpid()}] %(levelname)s: %(message)s",
        request.verbosity,
        sdk_details=False,
    )
    return run_pusher(request)


if __name__ == "__main__":
    sys.exit(main())
