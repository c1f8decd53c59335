"""ISO 8601 durations (`P3M`, `P1W`, `PT15M`, `P1Y2M10DT2H30M`) with calendar-exact arithmetic.

Years and months are nominal: they move the calendar date and clamp to the month's last day
(01-31 + P1M = 02-28, 2024-02-29 + P1Y = 2025-02-28), as isodate and dateutil do. A duration
without date parts is exact: it is a fixed number of seconds.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.errors import InputError

#: The longest retention window (deleteAfter, copyAfter): a backup taken before year 9000
#: then leaves by the end of year 9999, the last year Python's datetime can hold.
MAX_WINDOW_YEARS = 1000
#: where a window's length is measured (a leap-year-rich millennium: 365 243 days)
_WINDOW_FROM = datetime(2000, 1, 1)
_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)
_UNITS = (("Y", "years"), ("M", "months"), ("W", "weeks"), ("D", "days"))
_TIME_UNITS = (("H", "hours"), ("M", "minutes"), ("S", "seconds"))
_NAMES = tuple(name for _, name in (*_UNITS, *_TIME_UNITS))


@dataclass(frozen=True)
class Duration:
    """A duration as its ISO 8601 fields; whole numbers only (fractions are refused)."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    @property
    def total_months(self) -> int:
        return self.years * 12 + self.months

    @property
    def is_exact(self) -> bool:
        """True when the duration is a fixed number of seconds (no Y, M, W or D part)."""
        return not (self.years or self.months or self.weeks or self.days)

    @property
    def is_zero(self) -> bool:
        return self.total_months == 0 and self.fixed_part() == timedelta(0)

    def fixed_part(self) -> timedelta:
        """The weeks, days and time part as a timedelta (days of 24 hours)."""
        return timedelta(
            weeks=self.weeks,
            days=self.days,
            hours=self.hours,
            minutes=self.minutes,
            seconds=self.seconds,
        )

    @property
    def fixed_seconds(self) -> int:
        """The fixed part in seconds, as an int (a timedelta of it may not exist)."""
        days = self.weeks * 7 + self.days
        return ((days * 24 + self.hours) * 60 + self.minutes) * 60 + self.seconds

    def longest(self) -> timedelta:
        """An upper bound of how long the duration can last (31-day months)."""
        return timedelta(days=31 * self.total_months) + self.fixed_part()

    def times(self, n: int) -> Duration:
        """This duration n times over (for the n-th repetition, without clamping drift)."""
        return Duration(
            self.years * n,
            self.months * n,
            self.weeks * n,
            self.days * n,
            self.hours * n,
            self.minutes * n,
            self.seconds * n,
        )

    def add_to(self, when: datetime) -> datetime:
        """when + this duration: months on the calendar (clamped), then the fixed part.

        InputError when that is past year 9999 (a window stored before check_window)."""
        try:
            return add_months(when, self.total_months) + self.fixed_part()
        except (ValueError, OverflowError):
            raise InputError(
                f"{when.isoformat()} + {self} is past year 9999, the last one pgvault can represent"
            ) from None

    def words(self) -> str:
        """The duration in plain words: "6 months", "1 year 2 months", "15 minutes"."""
        named = [(getattr(self, name), name) for name in _NAMES if getattr(self, name)]
        return " ".join(f"{n} {name if n != 1 else name[:-1]}" for n, name in named) or "0 seconds"

    def __str__(self) -> str:
        date = "".join(
            f"{getattr(self, name)}{unit}" for unit, name in _UNITS if getattr(self, name)
        )
        time = "".join(
            f"{getattr(self, name)}{unit}" for unit, name in _TIME_UNITS if getattr(self, name)
        )
        if not date and not time:
            return "PT0S"
        return f"P{date}" + (f"T{time}" if time else "")


def add_months(when: datetime, months: int) -> datetime:
    """The same day and time `months` later, clamped to the last day of a shorter month."""
    if not months:
        return when
    index = when.year * 12 + (when.month - 1) + months
    year, month = divmod(index, 12)
    day = min(when.day, calendar.monthrange(year, month + 1)[1])
    return when.replace(year=year, month=month + 1, day=day)


def parse_duration(text: str, where: str = "duration") -> Duration:
    """Parse an ISO 8601 duration; InputError names `where` and the problem."""
    if not isinstance(text, str):
        raise InputError(f"{where}: expected an ISO 8601 duration string such as P3M")
    match = _DURATION.match(text.strip().upper())
    if not match:
        raise InputError(
            f"{where}: {text!r} is not an ISO 8601 duration "
            "(P[nY][nM][nW][nD][T[nH][nM][nS]], whole numbers, e.g. P3M, P1W, PT15M)"
        )
    fields = {name: int(value) for name, value in match.groupdict().items() if value}
    return Duration(**fields)


def check_window(duration: Duration, where: str) -> Duration:
    """A retention window of at most MAX_WINDOW_YEARS; InputError names `where` and the limit."""
    limit = _WINDOW_FROM.replace(year=_WINDOW_FROM.year + MAX_WINDOW_YEARS)
    fits = (
        duration.total_months <= 12 * MAX_WINDOW_YEARS
        and duration.fixed_seconds <= (limit - _WINDOW_FROM).total_seconds()
        and duration.add_to(_WINDOW_FROM) <= limit
    )
    if not fits:
        raise InputError(
            f"{where}: {duration} is longer than {MAX_WINDOW_YEARS} years "
            f"(P{MAX_WINDOW_YEARS}Y), the longest retention pgvault keeps: a backup's window "
            "must end within year 9999 (to keep a backup for good, use backup-keep)"
        )
    return duration


def month_length(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]
