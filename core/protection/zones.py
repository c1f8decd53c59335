"""Local wall-clock times to instants, with the DST rule pgvault documents.

A wall time that happens twice (the hour repeated when clocks go back) runs once, at its
first occurrence. A wall time that does not exist (the hour skipped when clocks go forward)
runs once, at the instant the gap ends (02:30 in Europe/Berlin on the spring-forward day
runs at 03:00 CEST), as Debian cron does for fixed-time jobs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import InputError


def get_zone(name: str | None, where: str = "timeZone") -> tzinfo:
    """An IANA time zone (None and "UTC" are UTC); InputError for an unknown name."""
    if name is None or name.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"{where}: unknown time zone {name!r} (use an IANA name such as Europe/Berlin)"
        ) from None


def require_aware(when: datetime, what: str = "instant") -> datetime:
    """when in UTC; a naive datetime is a programming error, not an input error."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{what} must carry a time zone: {when!r}")
    return when.astimezone(UTC)


def wall_time(instant: datetime, zone: tzinfo) -> datetime:
    """The naive local wall-clock time of an instant in a zone."""
    return instant.astimezone(zone).replace(tzinfo=None)


def _candidates(wall: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return first, second


def resolve(wall: datetime, zone: tzinfo) -> datetime:
    """The one UTC instant a wall time runs at (first of a repeated time, end of a gap)."""
    if zone is UTC:
        return wall.replace(tzinfo=UTC)
    first, second = _candidates(wall, zone)
    if first == second:
        return first
    if wall_time(first, zone) == wall:  # a repeated time: fold 0 is the first pass
        return min(first, second)
    return _gap_end(min(first, second), max(first, second), zone)


def resolve_all(wall: datetime, zone: tzinfo) -> tuple[datetime, ...]:
    """Every instant showing this wall time: two in a repeated hour, none in a gap."""
    first, second = _candidates(wall, zone)
    found = sorted({t for t in (first, second) if wall_time(t, zone) == wall})
    return tuple(found)


def _gap_end(low: datetime, high: datetime, zone: tzinfo) -> datetime:
    """The transition instant between low (old offset) and high (new offset), to the second."""
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)
