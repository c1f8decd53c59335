"""ISO 8601 times as operators type them: local time without an offset (barman's rule)."""

from __future__ import annotations

from datetime import datetime

from core.errors import InputError


def parse_local_time(text: str, what: str, example: str = "2026-11-21T09:30:00+00:00") -> datetime:
    """An aware datetime; InputError naming `what` for anything else, also for a local time
    that has no UTC equivalent (year 1 west of Greenwich, year 9999 east of it)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"invalid {what} {text!r}: use ISO 8601, e.g. '{example}'") from None
    try:
        if moment.tzinfo is None:
            moment = moment.astimezone()
        moment.timestamp()
    except (ValueError, OverflowError):
        raise InputError(
            f"invalid {what} {text!r}: out of range (from year 1 to 9999 in UTC)"
        ) from None
    return moment
