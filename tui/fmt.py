"""How both faces write numbers, times, states and bars: short, aligned, readable without colour.

The one formatting module of the console and of `--batch` (tui/batch/progressbar.py draws its
bars with these durations and rates). Everything essential is in the characters (a state is
a word, a bar is filled and empty blocks and a percentage); colour only repeats it. Imports
neither Textual nor rich: the batch path imports it, and the functions are cheap to test.
"""

from __future__ import annotations

from datetime import datetime

from core.jobs import Job, JobState
from core.sizes import format_size

#: how each state reads in a table (short enough for a 10-column cell)
STATE_LABEL: dict[JobState, str] = {
    JobState.PENDING: "pending",
    JobState.RUNNING: "running",
    JobState.PAUSE_REQUESTED: "pausing",
    JobState.PAUSED: "paused",
    JobState.CANCEL_REQUESTED: "cancelling",
    JobState.CANCELLED: "cancelled",
    JobState.FAILED: "FAILED",
    JobState.SUCCEEDED: "done",
}

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
    return FULL * filled + EMPTY * (width - filled)


def percent(fraction: float | None) -> str:
    if fraction is None:
        return "  ?%"
    return f"{fraction * 100:3.0f}%"


def per_second(value: float) -> str:
    """'17.0 MiB/s', '0 B/s': a rate of bytes, always with its unit."""
    return f"{format_size(value)}/s"


def rate(value: float) -> str:
    """'17.0 MiB/s'; '-' when nothing moves."""
    return per_second(value) if value > 0 else "-"


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
