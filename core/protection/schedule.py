"""When backups are due: ISO 8601 repeating intervals (`R/start/duration`) in a time zone.

A period with date parts (P1D, P1W, P1M) repeats the local wall-clock time of the start
(02:30 every day, whatever the UTC offset); a period of hours, minutes or seconds only
(PT15M, PT4H) repeats in elapsed time. How wall times across a DST change resolve is in
core.protection.zones. An entry `cron:<5 fields>` is pgvault's cron extension (cron.py).
All instants going in and out are timezone-aware; results are in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from functools import cached_property
from typing import Protocol

from core.errors import InputError
from core.protection.cron import CRON_PREFIX, parse_cron
from core.protection.durations import Duration, parse_duration
from core.protection.zones import get_zone, require_aware, resolve, wall_time

#: the shortest period a schedule given by an operator may repeat at
MIN_PERIOD = timedelta(minutes=1)
_INTERVAL = re.compile(r"^R(?P<count>\d*)/(?P<start>[^/]+)/(?P<period>[^/]+)$")


class Slots(Protocol):
    """One entry of a schedule: it can say its first slot after an instant."""

    @property
    def text(self) -> str: ...

    def next_after(self, instant: datetime) -> datetime | None: ...

    def last_at_or_before(self, instant: datetime) -> datetime | None: ...


@dataclass(frozen=True)
class RepeatingInterval:
    """`R[n]/start/period`: slot i is start + i x period (n slots when bounded)."""

    text: str
    start: datetime  # local wall time in zone (naive)
    period: Duration
    zone: tzinfo
    count: int | None = None

    @cached_property
    def origin(self) -> datetime:
        """The first slot as an instant."""
        return resolve(self.start, self.zone)

    @cached_property
    def _step(self) -> timedelta:
        return self.period.fixed_part()

    def slot(self, index: int) -> datetime:
        if self.period.is_exact:
            return self.origin + self._step * index
        if not self.period.total_months:
            return resolve(self.start + self._step * index, self.zone)
        return resolve(self.period.times(index).add_to(self.start), self.zone)

    def _in_range(self, index: int) -> bool:
        return index >= 0 and (self.count is None or index < self.count)

    def _first_after(self, instant: datetime) -> tuple[int, datetime]:
        """The smallest slot index whose instant is strictly after `instant`, and that slot.

        The estimate is exact away from DST changes and month ends, so this is usually
        two slot computations.
        """
        index = self._estimate(instant)
        while index > 0 and self.slot(index - 1) > instant:
            index -= 1
        slot = self.slot(index)
        while slot <= instant:
            index += 1
            slot = self.slot(index)
        return index, slot

    def _estimate(self, instant: datetime) -> int:
        """About the first index after instant (the walk in _first_after corrects it)."""
        if self.period.is_exact:
            return max(0, (instant - self.origin) // self._step + 1)
        wall = wall_time(instant, self.zone)
        if wall < self.start:
            return 0
        if not self.period.total_months:
            return (wall - self.start) // self._step + 1
        if not self._step:
            months = (wall.year - self.start.year) * 12 + wall.month - self.start.month
            return months // self.period.total_months
        return (wall - self.start) // self.period.longest()

    def next_after(self, instant: datetime) -> datetime | None:
        index, slot = self._first_after(require_aware(instant))
        return slot if self._in_range(index) else None

    def last_at_or_before(self, instant: datetime) -> datetime | None:
        index = self._first_after(require_aware(instant))[0] - 1
        if self.count is not None:
            index = min(index, self.count - 1)
        return self.slot(index) if index >= 0 else None


@dataclass(frozen=True)
class CompiledSchedule:
    """A trigger's schedule ready to answer: the union of its entries' slots."""

    entries: tuple[Slots, ...]
    zone: tzinfo

    def next_after(self, instant: datetime) -> datetime | None:
        """The first slot strictly after instant, or None when every entry has ended."""
        found = [slot for e in self.entries if (slot := e.next_after(instant)) is not None]
        return min(found, default=None)

    def last_at_or_before(self, instant: datetime) -> datetime | None:
        found = [slot for e in self.entries if (slot := e.last_at_or_before(instant)) is not None]
        return max(found, default=None)

    def occurrences(self, start: datetime, end: datetime) -> list[datetime]:
        """Every slot in [start, end), sorted, each once (entries may coincide)."""
        slots: set[datetime] = set()
        for entry in self.entries:
            cursor = entry.last_at_or_before(require_aware(start))
            if cursor != start:
                cursor = entry.next_after(start)
            while cursor is not None and cursor < end:
                slots.add(cursor)
                cursor = entry.next_after(cursor)
        return sorted(slots)

    def due(self, since: datetime, now: datetime) -> datetime | None:
        """The slot to run now: the latest one in (since, now], or None.

        `since` is the slot the instance last ran (or when it was created). However many
        slots were missed, only the latest is returned: one catch-up, not a storm.
        """
        slot = self.last_at_or_before(now)
        if slot is None or slot <= require_aware(since):
            return None
        return slot


def compile_schedule(
    intervals: Sequence[str], time_zone: str | None, where: str = "schedule"
) -> CompiledSchedule:
    """Parse a trigger's repeatingTimeIntervals in its timeZone; InputError names the path."""
    zone = get_zone(time_zone, f"{where}.timeZone")
    if not intervals:
        raise InputError(f"{where}.repeatingTimeIntervals: at least one interval is needed")
    entries: list[Slots] = []
    for index, text in enumerate(intervals):
        path = f"{where}.repeatingTimeIntervals[{index}]"
        if not isinstance(text, str):
            raise InputError(f"{path}: expected a string such as R/2021-08-15T06:30:00+00:00/P1W")
        entries.append(parse_entry(text, zone, path))
    return CompiledSchedule(tuple(entries), zone)


def parse_entry(text: str, zone: tzinfo, where: str) -> Slots:
    """One repeatingTimeIntervals entry: a repeating interval or `cron:<5 fields>`."""
    if text.startswith(CRON_PREFIX):
        return parse_cron(text, zone, where)
    return parse_interval(text, zone, where)


def parse_interval(text: str, zone: tzinfo, where: str = "interval") -> RepeatingInterval:
    """`R[n]/start/period`; a start without an offset is a wall time in the zone."""
    match = _INTERVAL.match(text.strip())
    if not match:
        problem = "has no repetition (it must start with R/)" if not text.startswith("R") else ""
        raise InputError(
            f"{where}: {text!r} {problem or 'is not a repeating interval'}; expected "
            "R[n]/<start date-time>/<ISO 8601 duration>, e.g. R/2021-08-15T06:30:00+00:00/P1W"
        )
    start = _parse_start(match["start"], zone, where)
    period = parse_duration(match["period"], f"{where} (period)")
    if period.is_zero:
        raise InputError(f"{where}: the period of {text!r} is zero")
    count = int(match["count"]) if match["count"] else None
    if count == 0:
        raise InputError(f"{where}: {text!r} repeats zero times (use R/ for no end)")
    return RepeatingInterval(text, start, period, zone, count)


def check_given_period(entry: Slots, where: str) -> None:
    """A schedule entry an operator gives (`policy create`, `simulate`, the trigger helpers)
    repeats at most once a minute: PT1S or PT30S would ask for a backup every few seconds,
    which no backup finishes in (Azure's shortest is PT4H). A stored policy is read as is."""
    if isinstance(entry, RepeatingInterval):
        period = entry.period
        if not period.total_months and period.fixed_part() < MIN_PERIOD:
            raise InputError(
                f"{where}: the period {period} of {entry.text!r} is shorter than a minute; "
                "pgvault runs a slot at most once a minute (PT1M)"
            )


def _parse_start(text: str, zone: tzinfo, where: str) -> datetime:
    if "T" not in text:
        raise InputError(f"{where}: the start {text!r} needs a date and a time (YYYY-MM-DDThh:mm)")
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{where}: the start {text!r} is not an ISO 8601 date-time") from None
    if start.tzinfo is not None:
        return wall_time(start, zone)
    return start


def describe_period(period: Duration) -> str:
    """A period in plain words, for the console ("every week", "every 15 minutes")."""
    words = period.words()
    return (
        f"every {words[2:]}"
        if words.startswith("1 ") and " " not in words[2:]
        else f"every {words}"
    )
