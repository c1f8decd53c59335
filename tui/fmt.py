"""How both faces write numbers, times, states and bars: short, aligned, readable without colour.

The one formatting module of the console and of `--batch` (tui/batch/progressbar.py draws its
bars with these durations and rates). Everything essential is in the characters (a state is
a word, a bar is filled and empty blocks and a percentage); colour only repeats it. Imports
neither Textual nor rich: the batch path imports it, and the functions are cheap to test.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.jobs import Job, JobState
from core.progress import RateSample
from core.units import format_size

#: how each state reads, in the console as in `jobs list` (CockroachDB's job states)
STATE_LABEL: dict[JobState, str] = {state: state.value for state in JobState}
#: the STATE column's usual width (succeeded, cancelled); a pause- or cancel-requested job
#: widens it while it shows
STATE_WIDTH = 10

FULL, EMPTY = "█", "░"
MINUTE, HOUR, DAY = 60, 3600, 86400
ELLIPSIS = ".."
#: the length of a WAL segment name (timeline, log, segment: 8 hex digits each)
SEGMENT_NAME = 24


def bar(fraction: float | None, width: int) -> str:
    """A bar of `width` cells: filled blocks then light shade; all shade when unknown."""
    width = max(1, width)
    if fraction is None:
        return EMPTY * width
    filled = round(max(0.0, min(1.0, fraction)) * width)
    if fraction < 1.0:
        filled = min(filled, width - 1)  # a full bar is for work that is all done
    return FULL * filled + EMPTY * (width - filled)


def percent(fraction: float | None, final: bool = False) -> str:
    """' 45%'; '  ?%' while the total is unknown, '   -' once the job ended without one."""
    if fraction is None:
        return "   -" if final else "  ?%"
    if fraction < 1.0:
        return f"{min(fraction * 100, LAST_PERCENT):3.0f}%"  # 99.7 done is not '100%'
    return f"{fraction * 100:3.0f}%"


#: the most a job that is not done shows: '100%' is for work that is all done
LAST_PERCENT = 99.0
#: a job that ended without succeeding: below complete however much of its data it moved
UNFINISHED = 0.999


def reached(job: Job) -> float | None:
    """How far the job got, as its bar and percentage show it: a job that failed or was
    cancelled after its last byte (waiting for WAL, say) did not complete, and never reads
    as 100%."""
    fraction = job.fraction
    if fraction is None or job.state is JobState.SUCCEEDED or not job.final:
        return fraction
    return min(fraction, UNFINISHED)


def job_rate(job: Job, value: float) -> str:
    """A job's rate as rate() shows it; 'paused' while it is paused (it moves nothing, and
    its last samples only fade)."""
    return PAUSED if job.state is JobState.PAUSED else rate(value)


PAUSED = "paused"


def per_second(value: float) -> str:
    """'17.0 MiB/s', '0 B/s': a rate of bytes, always with its unit."""
    return f"{format_size(value)}/s"


def rate(value: float) -> str:
    """'17.0 MiB/s'; '-' when nothing moves."""
    return per_second(value) if value > 0 else "-"


#: the cells of a table's rate column: "1024 MiB/s" and "99.9 MiB/s" fit
RATE_CELL = 10
#: from this many units on, a rate in a table drops its decimal (three significant digits)
WHOLE_UNITS = 99.95


def rate_cell(value: float) -> str:
    """rate() in RATE_CELL cells: '7.4 MiB/s', '676 KiB/s' (not '675.7 KiB/s'); '-' idle."""
    shown = rate(value)
    number, _, unit = shown.partition(" ")
    if unit and "." in number and float(number) >= WHOLE_UNITS:
        return f"{float(number):.0f} {unit}"
    return shown


#: server_version_num of PostgreSQL 10, the first numbered MAJOR.MINOR (170002 is 17.2)
TWO_PART_VERSIONS = 100000
#: what a job's data rate counts, for kinds whose data is not read from PostgreSQL
DATA_WORD = {"restore": "written", "verify": "checked"}
#: kinds whose bytes on the wire come from storage
RECEIVING = frozenset({"restore", "verify"})
#: whole seconds of samples behind "the wire rate now"
WIRE_WINDOW = 5


def wire_now(samples: Sequence[RateSample], now: float) -> float:
    """The mean wire rate over the last WIRE_WINDOW seconds of 1 s samples (0 when none)."""
    recent = [s.rate for s in samples if s.at > now - WIRE_WINDOW - 1]
    return sum(recent) / len(recent) if recent else 0.0


def rate_words(kind: str) -> tuple[str, str]:
    """What a job's two rates count: ('read', 'sent') for a backup, ('written', 'received')
    for a restore."""
    return DATA_WORD.get(kind, "read"), "received" if kind in RECEIVING else "sent"


def job_rates(kind: str, data: float, wire: float | None) -> str:
    """'read 30.0 MiB/s · sent 8.0 MiB/s': the data done and the bytes on the wire, named,
    because compression and a bandwidth cap make them differ."""
    data_word, wire_word = rate_words(kind)
    text = f"{data_word} {rate(data)}"
    return text if wire is None else f"{text} · {wire_word} {rate(wire)}"


def pg_version(number: int | str | None) -> str:
    """A server_version_num as PostgreSQL names the release: 150018 -> '15.18' (90624 -> 9.6.24)."""
    if number is None or not str(number).isdigit():
        return "-" if number is None else str(number)
    value = int(number)
    if value >= TWO_PART_VERSIONS:
        return f"{value // 10000}.{value % 10000}"
    return f"{value // 10000}.{value // 100 % 100}.{value % 100}"


def size(value: int | None) -> str:
    return "-" if value is None else format_size(value)


def duration(seconds: float | None) -> str:
    """'42s', '3m07s', '2h05m', '3d04h'; '-' when unknown."""
    if seconds is None:
        return "-"
    s = round(max(0.0, seconds))
    if s < MINUTE:
        return f"{s}s"
    if s < HOUR:
        return f"{s // MINUTE}m{s % MINUTE:02d}s"
    if s < DAY:
        return f"{s // HOUR}h{s % HOUR // MINUTE:02d}m"
    return f"{s // DAY}d{s % DAY // HOUR:02d}h"


def clock_time(ts: float | None, now: float | None = None) -> str:
    """HH:MM:SS today, 'MM-DD HH:MM' on another day (local time)."""
    if ts is None:
        return "-"
    moment = datetime.fromtimestamp(ts)
    if now is not None and datetime.fromtimestamp(now).date() != moment.date():
        return moment.strftime("%m-%d %H:%M")
    return moment.strftime("%H:%M:%S")


def date_time(ts: float | datetime | None) -> str:
    if ts is None:
        return "-"
    moment = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts)
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def short_date_time(moment: datetime | None) -> str:
    """'11-21 13:41' (local time)."""
    if moment is None:
        return "-"
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%m-%d %H:%M")


def elapsed(job: Job, now: float) -> float | None:
    if job.started is None:
        return None
    return max(0.0, (job.finished or now) - job.started)


def mean_rate(job: Job) -> str:
    """A finished job's data done per second over its whole run ('-' when it did none)."""
    took = elapsed(job, job.finished or job.heartbeat or job.created)
    if not took or not job.bytes_done:
        return "-"
    return f"{rate(job.bytes_done / took)} mean"


def cut(text: str, width: int) -> str:
    """Cut at the end with '..'."""
    if len(text) <= width:
        return text
    cut = len(ELLIPSIS)
    return text[: max(0, width - cut)] + ELLIPSIS if width > cut else text[:width]


def cut_left(text: str, width: int) -> str:
    """Keep the end: '..pgvault/backups'."""
    if len(text) <= width:
        return text
    cut = len(ELLIPSIS)
    return ELLIPSIS + text[-max(0, width - cut) :] if width > cut else text[-width:]


def amount(job: Job) -> str:
    """'173.2 MiB of 383.2 MiB'."""
    done = format_size(job.bytes_done)
    return f"{done} of {format_size(job.bytes_total)}" if job.bytes_total else done


def files(job: Job) -> str:
    if job.files_total:
        return f"{job.files_done}/{job.files_total} files"
    return f"{job.files_done} files" if job.files_done else "-"


def wal_short(name: str | None) -> str:
    """A segment name without its leading zeros of timeline and log: 'TL1 0/12'."""
    if not name or len(name) < SEGMENT_NAME:
        return name or "-"
    timeline = int(name[:8], 16)
    return f"{timeline}:{name[8:16].lstrip('0') or '0'}/{name[16:24].lstrip('0') or '0'}"
