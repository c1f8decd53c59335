"""pgvault's cron extension to a schedule: `cron:<minute> <hour> <day> <month> <weekday>`.

Standard five-field syntax (`*`, `a-b`, `*/n`, `a-b/n`, lists, month and day names, 0 or 7
for Sunday, `@hourly` ... `@yearly`), evaluated in the schedule's time zone. Day of month and
day of week combine as in Vixie cron: when both are restricted, either one matching is
enough. DST follows Debian cron: a job at a fixed hour runs once in a repeated hour and at
the end of a skipped one; a job whose hour is `*` follows the clock (both passes of a
repeated hour, nothing in a skipped one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from core.errors import InputError
from core.protection.zones import require_aware, resolve, resolve_all, wall_time

CRON_PREFIX = "cron:"
#: how far to look for a matching day before deciding an expression never fires
_HORIZON_DAYS = 366 * 8 + 1
#: local clocks move by at most this much at a DST change
_SHIFT = timedelta(hours=3)

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_HOURS_PER_DAY = 24
# (low, high, names offset by low) for minute, hour, day of month, month, day of week
_FIELDS: tuple[tuple[str, int, int, list[str]], ...] = (
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day of month", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


@dataclass(frozen=True)
class CronExpression:
    """A parsed five-field expression in a time zone."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool
    zone: tzinfo

    @property
    def follows_clock(self) -> bool:
        return len(self.hours) == _HOURS_PER_DAY

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def _instants(self, day: date) -> list[datetime]:
        found: list[datetime] = []
        for hour in self.hours:
            for minute in self.minutes:
                wall = datetime.combine(day, time(hour, minute))
                if self.follows_clock:
                    found.extend(resolve_all(wall, self.zone))
                else:
                    found.append(resolve(wall, self.zone))
        return found

    def next_after(self, instant: datetime) -> datetime | None:
        instant = require_aware(instant)
        day = (wall_time(instant, self.zone) - _SHIFT).date()
        for _ in range(_HORIZON_DAYS):
            if self.day_matches(day):
                later = [t for t in self._instants(day) if t > instant]
                if later:
                    return min(later)
            day += timedelta(days=1)
        return None

    def last_at_or_before(self, instant: datetime) -> datetime | None:
        instant = require_aware(instant)
        day = (wall_time(instant, self.zone) + _SHIFT).date()
        for _ in range(_HORIZON_DAYS):
            if self.day_matches(day):
                earlier = [t for t in self._instants(day) if t <= instant]
                if earlier:
                    return max(earlier)
            day -= timedelta(days=1)
        return None


def parse_cron(text: str, zone: tzinfo, where: str = "cron") -> CronExpression:
    """Parse `cron:<expression>`; InputError names `where` and the field at fault."""
    body = text.removeprefix(CRON_PREFIX).strip()
    body = _MACROS.get(body.lower(), body)
    fields = body.split()
    if len(fields) != len(_FIELDS):
        raise InputError(
            f"{where}: {text!r} needs five fields (minute hour day-of-month month day-of-week)"
        )
    values = [
        _parse_field(raw, spec, f"{where} ({spec[0]})")
        for raw, spec in zip(fields, _FIELDS, strict=True)
    ]
    weekdays = frozenset(d % 7 for d in values[4])
    expression = CronExpression(
        text=text,
        minutes=tuple(sorted(values[0])),
        hours=tuple(sorted(values[1])),
        days=frozenset(values[2]),
        months=frozenset(values[3]),
        weekdays=weekdays,
        days_restricted=not fields[2].startswith("*"),
        weekdays_restricted=not fields[4].startswith("*"),
        zone=zone,
    )
    if not _matches_any(expression):
        raise InputError(f"{where}: {text!r} never fires")
    return expression


def _matches_any(expression: CronExpression) -> bool:
    start = date(2024, 1, 1)
    return any(expression.day_matches(start + timedelta(days=n)) for n in range(366 * 4))


def _parse_field(raw: str, spec: tuple[str, int, int, list[str]], where: str) -> set[int]:
    _, low, high, names = spec
    found: set[int] = set()
    for part in raw.lower().split(","):
        base, _, step_text = part.partition("/")
        step = _number(step_text, names, 0, where) if step_text else 1
        if step < 1:
            raise InputError(f"{where}: step {step_text!r} must be at least 1")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _number(a, names, low, where), _number(b, names, low, where)
        else:
            first = _number(base, names, low, where)
            last = high if step_text else first
        if not low <= first <= last <= high:
            raise InputError(f"{where}: {part!r} is outside {low}-{high} or reversed")
        found.update(range(first, last + 1, step))
    return found


def _number(text: str, names: list[str], offset: int, where: str) -> int:
    if text in names:
        return names.index(text) + offset
    if not text.isdigit():
        raise InputError(f"{where}: {text!r} is not a number or a name")
    return int(text)
