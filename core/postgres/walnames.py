"""WAL file names and LSN arithmetic (PostgreSQL 13-17), computed, never asked of a server.

Names: segments `TTTTTTTTLLLLLLLLSSSSSSSS`, `.partial` segments, `.backup` labels
`<segment>.<offset>.backup`, and timeline `.history` files. The archive keeps segments under
a hash directory named by the first 16 characters (timeline + log), as barman-cloud does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import InputError

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024

SEGMENT_RE = re.compile(r"^[0-9A-F]{24}$")
PARTIAL_RE = re.compile(r"^[0-9A-F]{24}\.partial$")
BACKUP_RE = re.compile(r"^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$")
HISTORY_RE = re.compile(r"^[0-9A-F]{8}\.history$")
ANY_WAL_RE = re.compile(
    r"^(?:[0-9A-F]{24}(?:\.partial|\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history)$"
)


_LSN_HALF_MAX = 0xFFFFFFFF  # each side of the slash is a 32-bit hexadecimal number
_HISTORY_FIELDS = 3  # timeline, switch point, reason


def parse_lsn(text: str) -> int:
    """'16/B374D848' -> integer LSN."""
    try:
        high, low = text.strip().split("/")
        value = (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        raise InputError(f"invalid LSN {text!r} (expected the form 16/B374D848)") from None
    if max(int(high, 16), int(low, 16)) > _LSN_HALF_MAX:
        raise InputError(f"invalid LSN {text!r}")
    return value


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def segments_per_id(segment_size: int) -> int:
    return 0x100000000 // segment_size


def segment_number(lsn: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    return lsn // segment_size


def segment_name(timeline: int, segno: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    per_id = segments_per_id(segment_size)
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


def segment_of_lsn(timeline: int, lsn: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    """The segment that holds the byte at `lsn`."""
    return segment_name(timeline, segment_number(lsn, segment_size), segment_size)


def last_segment_needed(
    timeline: int, stop_lsn: int, segment_size: int = DEFAULT_SEGMENT_SIZE
) -> str:
    """The last segment a backup ending at stop_lsn needs (PostgreSQL's 'prev seg' rule)."""
    return segment_name(timeline, segment_number(stop_lsn - 1, segment_size), segment_size)


@dataclass(frozen=True, order=True)
class Segment:
    """A parsed segment name: timeline and segment number."""

    timeline: int
    segno: int

    @classmethod
    def parse(cls, name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
        base = name[:24]
        if not SEGMENT_RE.match(base):
            raise InputError(f"{name!r} is not a WAL segment name")
        timeline = int(base[:8], 16)
        log = int(base[8:16], 16)
        seg = int(base[16:24], 16)
        per_id = segments_per_id(segment_size)
        if seg >= per_id:
            raise InputError(f"{name!r} is not a valid segment for {segment_size}-byte segments")
        return cls(timeline, log * per_id + seg)

    def name(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
        return segment_name(self.timeline, self.segno, segment_size)

    def next(self) -> Segment:
        return Segment(self.timeline, self.segno + 1)


def is_wal_name(name: str) -> bool:
    """Any name PostgreSQL hands archive_command: segment, partial, backup label, history."""
    return bool(ANY_WAL_RE.match(name))


def is_segment(name: str) -> bool:
    return bool(SEGMENT_RE.match(name))


def is_history(name: str) -> bool:
    return bool(HISTORY_RE.match(name))


def is_backup_label(name: str) -> bool:
    return bool(BACKUP_RE.match(name))


def is_partial(name: str) -> bool:
    return bool(PARTIAL_RE.match(name))


def hash_dir(name: str) -> str | None:
    """The archive directory of a segment-like name (timeline + log); None for history."""
    if is_history(name):
        return None
    return name[:16]


def segment_range(first: str, last: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> list[str]:
    """Every segment name from first to last inclusive, on first's timeline."""
    start = Segment.parse(first, segment_size)
    end = Segment.parse(last, segment_size)
    if end.timeline != start.timeline:
        raise InputError(f"{first} and {last} are on different timelines")
    return [
        segment_name(start.timeline, n, segment_size) for n in range(start.segno, end.segno + 1)
    ]


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a timeline history file: the parent timeline and where it ended."""

    parent_timeline: int
    switch_lsn: int
    reason: str


def parse_history(text: str) -> list[HistoryEntry]:
    """Parse a `.history` file; blank lines and # comments are ignored, as PostgreSQL does."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t") if "\t" in line else line.split(None, 2)
        try:
            entries.append(
                HistoryEntry(
                    int(fields[0]),
                    parse_lsn(fields[1]),
                    fields[2] if len(fields) >= _HISTORY_FIELDS else "",
                )
            )
        except (IndexError, ValueError):
            raise InputError(f"invalid timeline history line {line!r}") from None
    return entries
