"""`pgvault --batch jobs VERB ...`: list, show, watch, pause, resume, cancel jobs and read logs.

Exit codes: 0 done; 1 the job cannot do that in its state (pause a finished job; control
another host's job that no longer answers), or the watched/waited-for job failed or was
cancelled; 3 bad input, including an unknown job id;
4 any other error. Every command first marks failed the jobs whose process died.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

from core.errors import ExitCode, InputError
from core.jobs import (
    FINAL_STATES,
    IllegalTransition,
    Job,
    JobState,
    JobStore,
    reachable,
    reap_dead,
    reap_if_gone,
)
from core.jobs.model import parse_job_id
from core.jobs.runner import ended_resumably, resume_request, spawn_detached
from core.units import format_size
from tui.batch.jobrun import open_store, run_here
from tui.batch.jobs_view import (
    LIST_ENDED,
    job_dict,
    list_jobs,
    log_line,
    parse_since,
    show_job,
)
from tui.batch.main import Context
from tui.batch.options import add_general
from tui.batch.progressbar import LiveBar, Progress, plain_line
from tui.fmt import duration as format_duration
from tui.fmt import per_second as format_rate

VERBS = ("list", "show", "watch", "pause", "resume", "cancel", "log")
POLL = 0.25  # seconds between store reads while watching or waiting


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "See and control jobs: every backup, restore and verify runs as a job recorded in "
        "the job store under the state directory (--state-dir before --batch, "
        "PGVAULT_STATE_DIR, or $XDG_STATE_HOME/pgvault)."
    )
    add_general(parser)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    parser_class = type(parser)

    def verb(name: str, summary: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = verbs.add_parser(
            name, help=summary, description=summary, add_help=False
        )
        if not isinstance(sub, parser_class):  # argparse makes subparsers of the parent's class
            raise TypeError(f"jobs {name}: expected a {parser_class.__name__}")
        add_general(sub)
        return sub

    _add_reading(verb)
    _add_control(verb)


def _add_reading(verb: Callable[[str, str], argparse.ArgumentParser]) -> None:
    listing = verb("list", "list jobs, newest first")
    listing.add_argument(
        "--state",
        action="append",
        metavar="STATE",
        help="only jobs in these states (comma-separated or repeated): "
        + ", ".join(s.value for s in JobState)
        + ", or active / finished",
    )
    listing.add_argument("--kind", action="append", metavar="KIND", help="only jobs of a kind")
    listing.add_argument("--server", action="append", metavar="NAME", help="only jobs for a server")
    listing.add_argument(
        "--since",
        metavar="TIME",
        help="only jobs created since TIME: an ISO 8601 date or time (local time unless it "
        "has an offset) or an age such as 30m, 12h, 7d",
    )
    listing.add_argument(
        "--all",
        action="store_true",
        help=f"every job: without it or a filter, the console lists the active jobs and the "
        f"{LIST_ENDED} newest ended ones (JSON always lists every job)",
    )
    _add_format(listing)

    show = verb("show", "show one job")
    show.add_argument("job_id", metavar="ID")
    _add_format(show)

    watch = verb("watch", "follow a job's progress until it ends")
    watch.add_argument("job_id", metavar="ID")
    watch.add_argument(
        "--interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between progress lines when the output is not a terminal (default: 5)",
    )
    _add_format(watch, "json prints one JSON object per line")


def _add_control(verb: Callable[[str, str], argparse.ArgumentParser]) -> None:

    pause = verb("pause", "pause a job: no more bytes are read or sent within a second")
    pause.add_argument("job_id", metavar="ID")
    _add_wait(pause, "until the job's process has paused it")

    resume = verb(
        "resume",
        "resume a paused job, or resume a failed backup in a new job that reuses what the "
        "failed one uploaded (a failed or cancelled logical backup: taken again under its ID)",
    )
    resume.add_argument("job_id", metavar="ID")
    resume.add_argument(
        "--detach",
        action="store_true",
        help="for a failed job: run the new job in the background and print its id",
    )

    cancel = verb("cancel", "cancel a job: uploads are aborted, nothing is left restorable")
    cancel.add_argument("job_id", metavar="ID")
    _add_wait(cancel, "until the job has ended")

    logs = verb("log", "print a job's log")
    logs.add_argument("job_id", metavar="ID")
    logs.add_argument(
        "-n", "--tail", type=int, default=0, metavar="N", help="only the last N lines"
    )
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new lines until the job ends"
    )


def _add_format(parser: argparse.ArgumentParser, extra: str = "") -> None:
    parser.add_argument(
        "--format",
        choices=("console", "json"),
        default="console",
        help="output format (default: console)" + (f"; {extra}" if extra else ""),
    )


def _add_wait(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--wait", action="store_true", help=f"wait {what}")
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long --wait waits (default: 60)",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    with open_store(ctx) as store:
        reap_dead(store)
        handler = {
            "list": list_jobs,
            "show": show_job,
            "watch": _watch,
            "pause": _pause,
            "resume": _resume,
            "cancel": _cancel,
            "log": _log,
        }[args.verb]
        return handler(store, args)


# ---- watch -----------------------------------------------------------------------------------


def _outcome(job: Job) -> int:
    return ExitCode.OK if job.state is JobState.SUCCEEDED else ExitCode.FAILED


def _summary(job: Job) -> str:
    took = (job.finished or time.time()) - (job.started or job.created)
    text = f"job {job.id} {job.state.value} after {format_duration(took)}"
    text += f", {format_size(job.bytes_done)}"
    if took > 0 and job.bytes_done:
        text += f" at {format_rate(job.bytes_done / took)} on average"
    if job.error:
        text += f": {job.error}"
    return text


def _watch(store: JobStore, args: argparse.Namespace) -> int:
    job_id = parse_job_id(args.job_id)
    job = store.get(job_id)
    if args.interval <= 0:
        raise InputError("--interval must be positive")
    try:
        if args.format == "json":
            return _watch_lines(store, job_id, args.interval, json_lines=True)
        if sys.stdout.isatty():
            return _watch_bar(store, job)
        return _watch_lines(store, job_id, args.interval, json_lines=False)
    except KeyboardInterrupt:
        print(f"\nstopped watching; job {job_id} goes on", file=sys.stderr)
        return ExitCode.OK


def _watch_bar(store: JobStore, job: Job) -> int:
    current = [job]

    def read() -> Progress:
        return Progress.of_job(current[0])

    live = LiveBar(sys.stdout, read, prefix=f"job {job.id}", interval=POLL)
    live.start()
    try:
        while not current[0].final:
            time.sleep(POLL)
            reap_dead(store)
            current[0] = store.get(job.id)
    finally:
        live.stop()
    print(_summary(current[0]))
    return _outcome(current[0])


def _watch_lines(store: JobStore, job_id: int, interval: float, json_lines: bool) -> int:
    last_key: tuple[str, str] | None = None
    last_at = 0.0
    while True:
        job = store.get(job_id)
        key = (job.state.value, job.phase)
        now = time.monotonic()
        if key != last_key or now - last_at >= interval or job.final:
            if json_lines:
                print(json.dumps(job_dict(job)), flush=True)
            elif job.final:
                print(_summary(job), flush=True)
            else:
                print(plain_line(Progress.of_job(job), f"job {job.id}"), flush=True)
            last_key, last_at = key, now
        if job.final:
            return _outcome(job)
        time.sleep(POLL)
        reap_dead(store)


# ---- pause / resume / cancel -----------------------------------------------------------------


def _wait(store: JobStore, job_id: int, done: set[JobState], timeout: float) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = store.get(job_id)
        if job.state in done or job.final:
            return job
        if time.monotonic() >= deadline:
            raise IllegalTransition(f"job {job_id} is still {job.state.value} after {timeout:g} s")
        time.sleep(POLL)
        reap_dead(store)


def _pause(store: JobStore, args: argparse.Namespace) -> int:
    job_id = parse_job_id(args.job_id)
    reachable(store, job_id, "pause")
    job, changed = store.request_pause(job_id)
    print(f"job {job_id}: {'pause requested' if changed else 'already ' + job.state.value}")
    if args.wait:
        job = _wait(store, job_id, {JobState.PAUSED}, args.timeout)
        print(f"job {job_id}: {job.state.value}")
        if job.state is not JobState.PAUSED:
            return _outcome(job)
    return ExitCode.OK


def _cancel(store: JobStore, args: argparse.Namespace) -> int:
    job_id = parse_job_id(args.job_id)
    reachable(store, job_id, "cancel")
    job, changed = store.request_cancel(job_id)
    print(f"job {job_id}: {'cancel requested' if changed else 'already ' + job.state.value}")
    if args.wait:
        job = _wait(store, job_id, set(FINAL_STATES), args.timeout)
        print(f"job {job_id}: {job.state.value}")
        return ExitCode.OK if job.state is JobState.CANCELLED else ExitCode.FAILED
    return ExitCode.OK


def _resume(store: JobStore, args: argparse.Namespace) -> int:
    job_id = parse_job_id(args.job_id)
    reap_if_gone(store, job_id)
    job = store.get(job_id)
    if not ended_resumably(store, job):
        if args.detach:
            raise InputError("--detach applies to resuming a failed job only")
        reachable(store, job_id, "resume")
        job, changed = store.request_resume(job_id)
        print(f"job {job_id}: {'resumed' if changed else 'already ' + job.state.value}")
        return ExitCode.OK
    kind, request = resume_request(store, job_id)
    if args.detach:
        new = spawn_detached(store, kind, request, resumed_from=job_id)
        print(new.id, flush=True)
        return ExitCode.OK
    print(f"job {job_id}: resuming in a new job", file=sys.stderr)
    done = run_here(store, kind, request, resumed_from=job_id, quiet=args.quiet > 0)
    print(_summary(done))
    return ExitCode.OK


# ---- log -------------------------------------------------------------------------------------


def _log(store: JobStore, args: argparse.Namespace) -> int:
    job_id = parse_job_id(args.job_id)
    store.get(job_id)
    if args.tail < 0:
        raise InputError("--tail must be zero or positive")
    lines = store.log_tail(job_id, limit=args.tail or -1)
    for line in lines:
        print(log_line(line.at, line.level, line.message), flush=True)
    if not args.follow:
        return ExitCode.OK
    last = lines[-1].seq if lines else 0
    try:
        while True:
            job = store.get(job_id)
            for line in store.log_tail(job_id, limit=-1, after_seq=last):
                print(log_line(line.at, line.level, line.message), flush=True)
                last = line.seq
            if job.final:
                return ExitCode.OK
            time.sleep(POLL)
            reap_dead(store)
    except KeyboardInterrupt:
        return ExitCode.OK


__all__ = ["LIST_ENDED", "add_arguments", "job_dict", "parse_since", "run"]
