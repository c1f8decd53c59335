"""What `pgvault --batch jobs list` and `jobs show` print, and how a job reads as JSON and
as a log line (`jobs watch --format json` and `jobs log` print those too)."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

from core.errors import ExitCode, InputError
from core.jobs import ACTIVE_STATES, FINAL_STATES, Job, JobFilter, JobState, JobStore
from core.jobs.kinds import BUILTIN
from core.jobs.model import parse_job_id, parse_state
from core.timeparse import parse_local_time
from core.units import format_size
from tui.batch.progressbar import Progress, format_amount, percent
from tui.fmt import PAUSED, WIRE_WINDOW, mean_rate, rate_words, reached, wire_now
from tui.fmt import duration as format_duration
from tui.fmt import per_second as format_rate
from tui.job_results import result_fields, result_json

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


def list_jobs(store: JobStore, args: argparse.Namespace) -> int:
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


def show_job(store: JobStore, args: argparse.Namespace) -> int:
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
    fields.extend((f"option.{key}", value) for key, value in flat_options(job.options))
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        print(f"{key.ljust(width)}  {value}")
    lines = store.log_tail(job.id, limit=10)
    if lines:
        print("log (last lines):")
        for line in lines:
            print(f"  {log_line(line.at, line.level, line.message)}")
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


# ---- log lines -------------------------------------------------------------------------------


def flat_options(options: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Options as dotted keys, leaving out what is unset (None, empty) for a readable show."""
    flat: list[tuple[str, str]] = []
    for key, value in sorted(options.items()):
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.extend(flat_options(value, f"{name}."))
        elif value is None or value in ([], ""):
            continue
        else:
            flat.append((name, value if isinstance(value, str) else json.dumps(value)))
    return flat


def log_line(at: float, level: int, message: str) -> str:
    return f"{local_time(at)} {logging.getLevelName(level)} {message}"
