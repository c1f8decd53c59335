"""Run a batch command's core operation as a job: `--detach`, or in the foreground with a bar.

Every long command (backup, restore, verify) calls `add_job_options(parser)` and then
`run_as_job(args, ctx, kind, request)`, so they all behave the same way:
- `--detach`: the job id alone on stdout, return at once; the job runs in its own process;
- otherwise: the job runs here (visible in `jobs list`), with a progress bar on stderr when
  stderr is a terminal and nothing extra when it is not; its failure is raised so the
  command exits with the seeds' code (a cancelled job exits 1).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from core.errors import OperationFailed
from core.jobs import Job, JobKind, JobReporter, JobState, JobStore
from core.jobs.runner import JobStoreUnwritable, raise_for, run_foreground, spawn_detached
from core.jobs.stop_signals import on_stop_signals
from core.progress import Tracker
from tui.batch.main import Context
from tui.batch.progressbar import LiveBar, Progress

R = TypeVar("R")
log = logging.getLogger("pgvault.jobs")


def add_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--detach",
        action="store_true",
        help="run as a background job: print the job id and return at once "
        "(follow it with `pgvault --batch jobs watch ID`)",
    )


def open_store(ctx: Context) -> JobStore:
    return JobStore.open(ctx.state_dir)


def run_as_job(
    args: argparse.Namespace,
    ctx: Context,
    kind: JobKind[R],
    request: R,
    resumed_from: int | None = None,
    must_record: bool = False,
) -> Job | None:
    """Run the request as a job; the finished job, or None when detached (id printed).

    When the job store cannot be opened or written (a read-only home, a full disk), a
    foreground run goes on without it, with a warning: the store must never stop a backup
    from cron. With `must_record` (a change whose record is part of the change, as a key
    change) it is refused instead, before anything is done.
    """
    detach = getattr(args, "detach", False)
    quiet = getattr(args, "quiet", 0) > 0
    try:
        store = open_store(ctx)
    except OperationFailed as exc:
        if detach or must_record:
            raise _unrecorded(kind, exc) if must_record else exc from None
        log.warning("%s; running without job tracking (not visible to `jobs`)", exc)
        return run_untracked(kind, request, quiet)
    with store:
        if detach:
            job = spawn_detached(store, kind, request, resumed_from=resumed_from)
            print(job.id, flush=True)
            return None
        try:
            return run_here(store, kind, request, resumed_from, quiet=quiet)
        except JobStoreUnwritable as exc:  # raised before the operation started
            if must_record:
                raise _unrecorded(kind, exc) from None
            log.warning("%s; running without job tracking (not visible to `jobs`)", exc)
    return run_untracked(kind, request, quiet)


def _unrecorded(kind: JobKind[R], exc: OperationFailed) -> OperationFailed:
    """The refusal of a change that would go unrecorded."""
    return OperationFailed(
        f"{exc}; a {kind.name} change is always recorded as a job: nothing was changed"
    )


def run_untracked(kind: JobKind[R], request: R, quiet: bool = False) -> Job:
    """The operation alone, with a bar and Ctrl-C cancelling it; a Job record with id 0."""
    tracker = Tracker()
    live = None
    if not quiet and sys.stderr.isatty():
        live = LiveBar(
            sys.stderr, lambda: Progress.of_snapshot(tracker.snapshot(), kind=kind.name), kind.name
        )
        live.start()
    try:
        with _cancel_on_signals([tracker]):
            result = kind.run(request, tracker)
    finally:
        if live is not None:
            live.stop()
    return Job(id=0, kind=kind.name, state=JobState.SUCCEEDED, result=result)


def run_here(
    store: JobStore,
    kind: JobKind[R],
    request: R,
    resumed_from: int | None = None,
    quiet: bool = False,
) -> Job:
    """Run in this process; a live bar on stderr when it is a terminal (and not -q)."""
    bars: list[LiveBar] = []

    def on_start(job: Job, reporter: JobReporter) -> None:
        if quiet or not sys.stderr.isatty():
            return
        live = LiveBar(
            sys.stderr,
            lambda: Progress.of_snapshot(reporter.snapshot(), reporter.state, kind.name),
            prefix=f"job {job.id}",
        )
        live.start()
        bars.append(live)

    def started(job: Job, reporter: JobReporter) -> None:
        controls.append(reporter)
        on_start(job, reporter)

    controls: list[JobReporter] = []
    try:
        with _cancel_on_signals(controls):
            outcome = run_foreground(
                store,
                kind,
                request,
                resumed_from=resumed_from,
                on_start=started,
                capture_logging=True,
            )
    finally:
        for live in bars:
            live.stop()
    return raise_for(outcome)


@contextmanager
def _cancel_on_signals(reporters: Sequence[JobReporter | Tracker]) -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP (the operator's terminal or SSH session closed) cancel the
    job cleanly at its next checkpoint (then exit 1): uploads aborted, the reason recorded,
    instead of a death that leaves multipart uploads behind and the backup to be judged
    ABANDONED."""

    def cancel(sig: signal.Signals) -> None:
        for reporter in reporters:
            # Control takes a lock the interrupted code might hold: cancel from a thread.
            threading.Thread(
                target=reporter.control.cancel, args=(f"interrupted by {sig.name}",)
            ).start()

    with on_stop_signals(cancel):
        yield
