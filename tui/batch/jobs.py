"""`pgvault --batch jobs VERB ...`: list, show, watch, pause, resume, cancel jobs and read logs.

Exit codes: 0 done; 1 the job cannot do that in its state (pause a finished job; control
another host's job that no longer answers), or the watched/waited-for job failed or was
cancelled; 3 bad input, including an unknown job id;
4 any other error. Every command first marks failed the jobs whose process died.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from core.errors import ExitCode, InputError
from core.jobs import (
    ACTIVE_STATES,
    FINAL_STATES,
    IllegalTransition,
    Job,
    JobFilter,
    JobState,
    JobStore,
    reachable,
    reap_dead,
    reap_if_gone,
)
from core.jobs.kinds import BUILTIN
from core.jobs.model import parse_job_id, parse_state
from core.jobs.runner import ended_resumably, resume_request, spawn_detached
from core.timeparse import parse_local_time
from core.units import format_size
from tui.batch.jobrun import open_store, run_here
from tui.batch.main import Context
from tui.batch.options import add_general
from tui.batch.progressbar import (
    LiveBar,
    Progress,
    format_amount,
    percent,
    plain_line,
)
from tui.fmt import PAUSED, WIRE_WINDOW, mean_rate, rate_words, reached, wire_now
from tui.fmt import duration as format_duration
from tui.fmt import per_second as format_rate
from tui.job_results import result_fields, result_json

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
            "list": _list,
            "show": _show,
            "watch": _watch,
            "pause": _pause,
            "resume": _resume,
            "cancel": _cancel,
            "log": _log,
        }[args.verb]
        return handler(store, args)


# ---- output helpers --------------------------------------------------------------------------


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def local_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def job_dict(job: Job) -> dict[str, Any]:
    """A job as JSON: times in ISO 8601 UTC, bytes and rates as numbers."""
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state.value,
        "description": job.description,
        "server": job.server,
        "destination": job.destination,
        "phase": job.phase,
        "bytes_done": job.bytes_done,
        "bytes_total": job.bytes_total,
        "files_done": job.files_done,
        "files_total": job.files_total,
        "fraction": job.fraction,
        "rate": round(job.rate, 1),
        "eta": None if job.eta is None else round(job.eta, 1),
        "created": iso(job.created),
        "started": iso(job.started),
        "finished": iso(job.finished),
        "heartbeat": iso(job.heartbeat),
        "pid": job.pid,
        "host": job.host,
        "detached": job.detached,
        "error": job.error,
        "result": result_json(job),
        "resumed_from": job.resumed_from,
        "options": job.options,
    }


def _dump(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


# ---- list ------------------------------------------------------------------------------------

#: ended jobs the console's `jobs list` shows without a filter or --all (active ones: all)
LIST_ENDED = 20

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """An ISO 8601 date/time (local unless an offset is given) or an age like 12h."""
    now = time.time() if now is None else now
    match = _AGE.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT[match.group(2).lower()]
    when = parse_local_time(
        text, "--since", "2025-01-31, 2025-01-31T08:00, or an age: 30m, 12h, 7d"
    )
    return when.timestamp()


def parse_states(values: list[str] | None) -> tuple[JobState, ...]:
    states: list[JobState] = []
    for name in (n.lower() for n in _split(values, "--state")):
        if name == "active":
            states += sorted(ACTIVE_STATES)
        elif name == "finished":
            states += sorted(FINAL_STATES)
        else:
            states.append(_one_state(name))
    return tuple(dict.fromkeys(states))


def _one_state(name: str) -> JobState:
    try:
        return parse_state(name)
    except InputError:
        names = ", ".join(["active", "finished", *(s.value for s in JobState)])
        raise InputError(f"unknown job state {name!r} (one of: {names})") from None


def _split(values: list[str] | None, flag: str) -> tuple[str, ...]:
    names = tuple(v.strip() for value in values or [] for v in value.split(",") if v.strip())
    if values and not names:  # --server "" (an unset variable): not every job
        raise InputError(f"{flag} names nothing")
    return names


def _list(store: JobStore, args: argparse.Namespace) -> int:
    where = JobFilter(
        states=parse_states(args.state),
        kinds=_split(args.kind, "--kind"),
        servers=_split(args.server, "--server"),
        since=parse_since(args.since) if args.since else None,
    )
    jobs = store.list_jobs(where)
    unknown = [k for k in where.kinds if k not in BUILTIN]
    if unknown and not jobs:  # a kind no job has and pgvault does not know: a typo, said so
        raise InputError(f"unknown job kind {unknown[0]!r} (one of: {', '.join(BUILTIN)})")
    if args.format == "json":
        _dump([job_dict(j) for j in jobs])
        return ExitCode.OK
    if not jobs:
        print("no jobs", file=sys.stderr)
        return ExitCode.OK
    filtered = args.all or args.state or args.kind or args.server or args.since
    jobs, hidden = (jobs, 0) if filtered else _recent(jobs)
    # DATA RATE: the data done per second (read, written, checked), not the bytes on the wire.
    header = ["ID", "KIND", "SERVER", "STATE", "DONE", "SIZE", "DATA RATE", "ETA", "CREATED"]
    rows = [[*header, "DEST"]]
    for job in jobs:
        active = job.state.active
        rate = PAUSED if job.state is JobState.PAUSED else format_rate(job.rate) if active else "-"
        rows.append(
            [
                str(job.id),
                job.kind,
                job.server or "-",
                job.state.value,
                percent(reached(job)).strip() if job.bytes_total else format_size(job.bytes_done),
                format_size(job.bytes_total) if job.bytes_total else "-",
                rate,
                format_duration(job.eta) if active else "-",
                local_time(job.created),
                job.destination or "-",
            ]
        )
    print(_table(rows))
    if hidden:
        print(
            f"{hidden} older ended jobs not shown: --all lists every job (or select with "
            "--state, --kind, --server, --since)",
            file=sys.stderr,
        )
    return ExitCode.OK


def _recent(jobs: list[Job]) -> tuple[list[Job], int]:
    """Every active job and the LIST_ENDED newest ended ones (newest first, as given); how
    many ended ones were left out. A WAL push is a job: ended jobs pile up by thousands."""
    shown: list[Job] = []
    ended = 0
    for job in jobs:
        if job.state.active or ended < LIST_ENDED:
            shown.append(job)
            ended += 0 if job.state.active else 1
    return shown, len(jobs) - len(shown)


# ---- show ------------------------------------------------------------------------------------


def _show(store: JobStore, args: argparse.Namespace) -> int:
    job = store.get(parse_job_id(args.job_id))
    if args.format == "json":
        _dump(job_dict(job))
        return ExitCode.OK
    fields: list[tuple[str, str]] = [
        ("job", str(job.id)),
        ("kind", job.kind),
        ("state", job.state.value),
        ("description", job.description or "-"),
        ("server", job.server or "-"),
        ("destination", job.destination or "-"),
        ("phase", job.phase or "-"),
        ("progress", f"{percent(reached(job)).strip()} {format_amount(Progress.of_job(job))}"),
        ("bytes", f"{job.bytes_done} / {job.bytes_total if job.bytes_total else '?'}"),
        ("files", f"{job.files_done} / {job.files_total if job.files_total else '?'}"),
        *_rates(store, job),
        ("eta", format_duration(job.eta)),
        ("created", local_time(job.created)),
        ("started", local_time(job.started)),
        ("finished", local_time(job.finished)),
        ("heartbeat", local_time(job.heartbeat)),
        ("process", f"pid {job.pid} on {job.host}" if job.pid else "-"),
        ("detached", "yes" if job.detached else "no"),
    ]
    if job.resumed_from:
        fields.append(("resumed from", f"job {job.resumed_from}"))
    if job.error:
        fields.append(("error", job.error))
    fields.extend(result_fields(job))
    fields.extend((f"option.{key}", value) for key, value in _flat_options(job.options))
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        print(f"{key.ljust(width)}  {value}")
    lines = store.log_tail(job.id, limit=10)
    if lines:
        print("log (last lines):")
        for line in lines:
            print(f"  {_log_line(line.at, line.level, line.message)}")
    return ExitCode.OK


def _rates(store: JobStore, job: Job) -> list[tuple[str, str]]:
    """'read rate' and 'sent rate' (or written and received): the data done and the bytes on
    the wire, which compression and a bandwidth cap make differ."""
    data_word, wire_word = rate_words(job.kind)
    if job.final:
        return [(f"{data_word} rate", mean_rate(job)), (f"{wire_word} rate", "-")]
    if job.state is JobState.PAUSED:  # it moves nothing: not its last samples, fading
        return [(f"{data_word} rate", PAUSED), (f"{wire_word} rate", PAUSED)]
    at = job.heartbeat or time.time()  # the job's last report: its samples end there
    wire = wire_now(store.samples(job.id, since=at - 2 * WIRE_WINDOW), at)
    return [(f"{data_word} rate", format_rate(job.rate)), (f"{wire_word} rate", format_rate(wire))]


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


def _flat_options(options: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Options as dotted keys, leaving out what is unset (None, empty) for a readable show."""
    flat: list[tuple[str, str]] = []
    for key, value in sorted(options.items()):
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.extend(_flat_options(value, f"{name}."))
        elif value is None or value in ([], ""):
            continue
        else:
            flat.append((name, value if isinstance(value, str) else json.dumps(value)))
    return flat


def _log_line(at: float, level: int, message: str) -> str:
    return f"{local_time(at)} {logging.getLevelName(level)} {message}"


def _log(store: JobStore, args: argparse.Namespace) -> int:
    job_id = parse_job_id(args.job_id)
    store.get(job_id)
    if args.tail < 0:
        raise InputError("--tail must be zero or positive")
    lines = store.log_tail(job_id, limit=args.tail or -1)
    for line in lines:
        print(_log_line(line.at, line.level, line.message), flush=True)
    if not args.follow:
        return ExitCode.OK
    last = lines[-1].seq if lines else 0
    try:
        while True:
            job = store.get(job_id)
            for line in store.log_tail(job_id, limit=-1, after_seq=last):
                print(_log_line(line.at, line.level, line.message), flush=True)
                last = line.seq
            if job.final:
                return ExitCode.OK
            time.sleep(POLL)
            reap_dead(store)
    except KeyboardInterrupt:
        return ExitCode.OK


__all__ = ["add_arguments", "job_dict", "parse_since", "run"]
