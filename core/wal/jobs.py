"""The fast path's batches as jobs: each batch the pusher uploads is recorded in the job store.

An operator sees them in `jobs list --kind wal-push` and the console, pauses one (uploads
stop within a second; archive_command waits, then fails after --async-timeout and
PostgreSQL retries) or cancels one (its unfinished files are reported failed to
archive_command, PostgreSQL retries them, the next batch is a new job). Recording never
stands between PostgreSQL and its archive: when the store cannot be written the batch runs
unrecorded, with a warning in the pusher's log.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass

from core.errors import InputError, OperationFailed, PgvaultError
from core.jobs.kinds import JobInfo, JobKind
from core.jobs.model import JobState
from core.jobs.results import WalPushJobResult
from core.jobs.runner import execute, raise_for, start_foreground
from core.jobs.store import JobStore
from core.progress import NullReporter, Reporter
from core.wal.pusher import BatchResult, BatchRunner, BatchWork

log = logging.getLogger("pgvault.wal.jobs")

KIND = "wal-push"
#: succeeded batches are dropped after a day: a busy server makes thousands
SUCCEEDED_KEPT = 24 * 3600.0


@dataclass(frozen=True)
class WalPushRequest:
    """One batch: the files, the server, where they go (display form, no credentials)."""

    server: str
    destination: str
    files: tuple[str, ...]
    spool: str


def _describe(request: WalPushRequest) -> JobInfo:
    count = len(request.files)
    first, last = request.files[0], request.files[-1]
    span = first if count == 1 else f"{first}..{last}"
    return JobInfo(
        description=f"WAL push of {count} file{'s' if count != 1 else ''} ({span}) "
        f"of {request.server} to {request.destination}",
        server=request.server,
        destination=request.destination,
    )


def _refuse(request: WalPushRequest, reporter: Reporter) -> WalPushJobResult:
    raise InputError(
        "a WAL push batch runs inside the fast path's pusher and cannot be started again: "
        "PostgreSQL retries its files through archive_command"
    )


WAL_PUSH: JobKind[WalPushRequest] = JobKind(
    name=KIND,
    request_type=WalPushRequest,
    run=_refuse,
    describe=_describe,
    entry="core.wal.jobs:WAL_PUSH",
    instead_of_resume=(
        "PostgreSQL calls archive_command again for every file not archived, and the pusher "
        "retries it"
    ),
)


def _summary(result: BatchResult) -> WalPushJobResult:
    return WalPushJobResult(
        stored=len(result.pushed),
        already_archived=len(result.already),
        failed=len(result.failed),
        gone=len(result.skipped),
    )


def recorded_batches(store: JobStore, server: str, destination: str, spool: str) -> BatchRunner:
    """A batch runner that records every batch as a wal-push job in `store`."""

    def run(names: list[str], work: BatchWork) -> BatchResult:
        request = WalPushRequest(server, destination, tuple(names), spool)
        try:
            store.prune(time.time() - SUCCEEDED_KEPT, kind=KIND, state=JobState.SUCCEEDED)
            _, reporter = start_foreground(store, WAL_PUSH, request)
        except (sqlite3.Error, OSError, PgvaultError) as exc:
            log.warning("batch not recorded as a job (job store: %s)", exc)
            return work(NullReporter())
        done: list[BatchResult] = []

        def operation(request: WalPushRequest, reporter: Reporter) -> WalPushJobResult:
            result = work(reporter)
            done.append(result)
            if result.failed:
                name, why = next(iter(result.failed.items()))
                raise OperationFailed(
                    f"{len(result.failed)} of {len(names)} files not archived; {name}: {why}"
                )
            return _summary(result)

        outcome = execute(WAL_PUSH, request, reporter, operation=operation)
        if done:
            return done[0]
        raise_for(outcome)  # the work itself raised: hand its error to the pusher
        raise AssertionError("unreachable: a job without a result succeeded")

    return run
