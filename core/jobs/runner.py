"""Run an operation as a job: in this process (foreground) or in a detached process.

Foreground: the job is recorded running, the operation runs here with a JobReporter, and
the job ends succeeded, failed or cancelled; the operation's exception is re-raised so the
command exits with its code (a cancelled job exits 1). Detached: the job is recorded
pending and a new process (its own session, no terminal, stdio detached) runs it with
`python -m core.jobs.worker`; the caller gets the job at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from core.errors import Cancelled, OperationFailed, PgvaultError, own_cause
from core.jobs.kinds import JobKind, encode_request, load_kind
from core.jobs.liveness import hostname, process_of, reap_dead, this_process
from core.jobs.model import IllegalTransition, Job, JobState
from core.jobs.reporter import JobReporter
from core.jobs.results import JobResult
from core.jobs.store import JobStore
from core.paths import adopt_fd, adopt_path
from core.progress import Reporter
from core.secrets import RedactingFormatter, redact

R = TypeVar("R")
log = logging.getLogger("pgvault.jobs")

WORKER_LOGS = "workers"  # under the state directory: each detached process's stderr


@dataclass(frozen=True)
class Outcome:
    """How a job ended, and the exception its operation raised (None when it succeeded)."""

    job: Job
    error: BaseException | None = None


def _record(
    store: JobStore,
    kind: JobKind[R],
    request: R,
    state: JobState,
    detached: bool,
    resumed_from: int | None,
) -> Job:
    if kind.validate is not None:
        kind.validate(request)
    info = kind.describe(request)
    return store.create(
        kind.name,
        state=state,
        description=info.description,
        server=info.server,
        destination=info.destination,
        options=kind.options(request),
        entry=kind.entry,
        detached=detached,
        process=this_process() if state is JobState.RUNNING else None,
        resumed_from=resumed_from,
    )


class JobStoreUnwritable(OperationFailed):
    """The job store opened, but a job cannot be recorded in it (full disk, read-only)."""


def start_foreground(
    store: JobStore, kind: JobKind[R], request: R, resumed_from: int | None = None
) -> tuple[Job, JobReporter]:
    """Record a running job for this process; run it with `execute(..)`."""
    if kind.validate is not None:
        kind.validate(request)  # bad input is the caller's, whatever the store's state
    try:
        reap_dead(store)
        job = _record(store, kind, request, JobState.RUNNING, False, resumed_from)
    except (sqlite3.Error, OSError) as exc:
        raise JobStoreUnwritable(
            f"cannot record a job in the job store {store.path}: {exc}"
        ) from None
    return job, JobReporter(store.path, job.id)


def execute(
    kind: JobKind[R],
    request: R,
    reporter: JobReporter,
    initial: JobState = JobState.RUNNING,
    capture_logging: bool = False,
    operation: Callable[[R, Reporter], JobResult | None] | None = None,
) -> Outcome:
    """Run the operation with the reporter and record how it ended; never raises for it.

    `operation` replaces `kind.run` for work a process records as it does it in place
    (the WAL pusher's batches).
    """
    reporter.start(initial)
    error: BaseException | None = None
    result: JobResult | None = None
    run = operation or kind.run
    with _captured_logs(reporter) if capture_logging else contextlib.nullcontext():
        try:
            result = run(request, reporter)
        except BaseException as exc:  # recorded, then handed back to the caller
            error = exc
    if error is None:
        reporter.record("succeeded")
        job = reporter.finish(JobState.SUCCEEDED, result=result)
        return Outcome(job)
    cause = own_cause(error)
    if reporter.control.cancelled or isinstance(cause, Cancelled):
        reason = reporter.control.reason or str(cause or error)
        state, message = JobState.CANCELLED, reason
    elif isinstance(error, KeyboardInterrupt):
        state, message = JobState.CANCELLED, "interrupted"
    elif isinstance(cause, PgvaultError):
        state, message = JobState.FAILED, str(cause)
    else:
        state, message = JobState.FAILED, redact(f"{type(error).__name__}: {error}")
    level = logging.ERROR if state is JobState.FAILED else logging.WARNING
    reporter.record(f"{state.value}: {message}", level)
    job = reporter.finish(state, error=message)
    return Outcome(job, error)


def run_foreground(
    store: JobStore,
    kind: JobKind[R],
    request: R,
    resumed_from: int | None = None,
    on_start: Callable[[Job, JobReporter], None] | None = None,
    capture_logging: bool = False,
) -> Outcome:
    """Record and run a job in this process (see the module docstring)."""
    job, reporter = start_foreground(store, kind, request, resumed_from)
    if on_start is not None:
        on_start(job, reporter)
    return execute(kind, request, reporter, capture_logging=capture_logging)


def raise_for(outcome: Outcome) -> Job:
    """The job if it succeeded; else the operation's error, or Cancelled, raised."""
    if outcome.error is None:
        return outcome.job
    if outcome.job.state is JobState.CANCELLED and not isinstance(outcome.error, KeyboardInterrupt):
        raise Cancelled(f"job {outcome.job.id} cancelled: {outcome.job.error}")
    raise outcome.error


def ended_resumably(store: JobStore, job: Job) -> bool:
    """The job ended in a state a new job resumes: failed, or cancelled for some kinds."""
    if job.state is JobState.FAILED:
        return True
    if job.state is not JobState.CANCELLED:
        return False
    return load_kind(job.kind, store.entry(job.id)).resumes_cancelled


def resume_request(store: JobStore, job_id: int) -> tuple[JobKind[Any], Any]:
    """The kind and request of a new job that resumes failed job `job_id` (one-line errors)."""
    job = store.get(job_id)
    kind = load_kind(job.kind, store.entry(job_id))
    ended = (JobState.FAILED, JobState.CANCELLED) if kind.resumes_cancelled else (JobState.FAILED,)
    if job.state not in ended:
        raise IllegalTransition(
            f"cannot resume job {job_id} in a new job: it is {job.state.value}, not failed"
        )
    if kind.resume is None:
        raise IllegalTransition(
            f"cannot resume job {job_id}: {job.kind} jobs cannot be resumed after they fail; "
            f"{kind.instead_of_resume}"
        )
    if job.host not in (None, hostname()):
        raise IllegalTransition(f"cannot resume job {job_id} here: it ran on {job.host}")
    return kind, kind.resume(kind.decode(job.options), job)


def spawn_detached(
    store: JobStore,
    kind: JobKind[R],
    request: R,
    resumed_from: int | None = None,
    environment: Mapping[str, str] | None = None,
) -> Job:
    """Record a pending job and start a detached process that runs it; return at once.

    `environment`: variables added to the process's own (the keys a console unlocked), which
    the job record never holds."""
    reap_dead(store)
    job = _record(store, kind, request, JobState.PENDING, True, resumed_from)
    logs = store.path.parent / WORKER_LOGS
    if not logs.exists():
        logs.mkdir(mode=0o700, exist_ok=True)
        adopt_path(logs)  # the state directory's owner's, as jobs.db
    stderr_path = logs / f"job-{job.id}.log"
    fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    adopt_fd(fd, logs)
    command = [
        sys.executable,
        "-m",
        "core.jobs.worker",
        "--store",
        str(store.path),
        str(job.id),
    ]
    try:
        # A new session: no controlling terminal, so neither the terminal closing (SIGHUP)
        # nor Ctrl-C in it reaches the job. The request goes through a pipe, not argv.
        child = subprocess.Popen(  # noqa: S603 - fixed argv (this interpreter, our module)
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=fd,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, **environment} if environment else None,
        )
    except OSError as exc:
        store.transition(job.id, JobState.FAILED, error=f"cannot start the job process: {exc}")
        raise OperationFailed(f"cannot start a process for job {job.id}: {exc}") from None
    finally:
        os.close(fd)
    store.set_process(job.id, process_of(child.pid))
    if child.stdin is not None:  # always, with stdin=PIPE
        try:
            child.stdin.write(encode_request(kind, request).encode())
            child.stdin.close()
        except BrokenPipeError:
            pass  # the child died at once; the reaper records it from its stderr log
    # Reap the child when it ends, should this process live longer than it (a console).
    threading.Thread(target=child.wait, name=f"reap-job-{job.id}", daemon=True).start()
    return store.get(job.id)


def run_worker(store_path: str | os.PathLike[str], job_id: int, request_text: str) -> int:
    """The detached process's body: claim the job, run it, record the end; an exit code."""
    from core.jobs.kinds import decode_request

    with JobStore(store_path) as store:
        job = store.get(job_id)
        try:
            kind = load_kind(job.kind, store.entry(job_id))
            request = decode_request(kind, request_text)
        except PgvaultError as exc:
            store.transition(job_id, JobState.FAILED, error=str(exc))
            raise
        job = store.claim(job_id, this_process())
    if job.state is JobState.CANCELLED:
        return int(Cancelled.exit_code)
    reporter = JobReporter(store_path, job_id)
    _cancel_on_signals(reporter)
    outcome = execute(kind, request, reporter, initial=job.state, capture_logging=True)
    if outcome.error is None:
        return 0
    if outcome.job.state is JobState.CANCELLED:
        return int(Cancelled.exit_code)
    cause = own_cause(outcome.error)
    return int(cause.exit_code) if cause is not None else 4


def _cancel_on_signals(reporter: JobReporter) -> None:
    """SIGTERM cancels the job cleanly (uploads aborted, backup marked failed)."""
    import signal

    def handler(signum: int, frame: object) -> None:
        # Not from the handler itself: Control takes a lock the interrupted code may hold.
        threading.Thread(
            target=reporter.control.cancel, args=(f"terminated by signal {signum}",)
        ).start()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


class _JobLogHandler(logging.Handler):
    """Copies pgvault's own log records (INFO and up) into the job's log."""

    def __init__(self, reporter: JobReporter) -> None:
        super().__init__(logging.INFO)
        self.reporter = reporter
        self.setFormatter(RedactingFormatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        # The reporter's own lines are already in the log.
        if record.name in ("pgvault.progress", "pgvault.jobs"):
            return
        try:
            self.reporter._on_log(record.created, record.levelno, self.format(record))
        except Exception:  # a log line must never fail the operation
            self.handleError(record)


@contextlib.contextmanager
def _captured_logs(reporter: JobReporter) -> Iterator[None]:
    handler = _JobLogHandler(reporter)
    logger = logging.getLogger("pgvault")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


__all__ = [
    "JobStoreUnwritable",
    "Outcome",
    "ended_resumably",
    "execute",
    "raise_for",
    "resume_request",
    "run_foreground",
    "run_worker",
    "spawn_detached",
    "start_foreground",
]
