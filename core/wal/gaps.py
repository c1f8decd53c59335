"""The holes of a WAL archive, per timeline, and the backups each one cuts.

A gap is a run of consecutive missing segments on one timeline: a hole between two archived
stretches, or segments a backup needs (its begin..end WAL, or the WAL after it along the
timeline recovery follows, core.wal.check) that are not archived. Each gap names the
backups whose point-in-time range it cuts, and those it makes unrestorable (a segment
between their begin and end WAL).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from core.postgres.walnames import DEFAULT_SEGMENT_SIZE, Segment, is_segment, segment_name
from core.wal.check import BackupCoverage


@dataclass(frozen=True)
class WalGap:
    """Segments first_missing..last_missing of one timeline, none of them archived."""

    timeline: int
    first_missing: str
    last_missing: str
    segments: int
    #: every backup whose recovery range it cuts (oldest first)
    backups: tuple[str, ...] = ()
    #: of those, the backups it leaves unrestorable (missing before their end WAL)
    unrestorable: tuple[str, ...] = ()

    def names(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> list[str]:
        first = Segment.parse(self.first_missing, segment_size).segno
        return [
            segment_name(self.timeline, n, segment_size)
            for n in range(first, first + self.segments)
        ]

    def lsn_range(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> tuple[str, str]:
        """The WAL positions the gap spans: from its first byte to the first byte after it."""
        first = Segment.parse(self.first_missing, segment_size).segno
        return lsn(first * segment_size), lsn((first + self.segments) * segment_size)


def lsn(position: int) -> str:
    """PostgreSQL's text form of a WAL position (0/5000000)."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def _runs(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted runs (first, last) of consecutive numbers."""
    runs: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def archive_gaps(
    archived: Collection[str],
    coverage: Sequence[BackupCoverage] = (),
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> list[WalGap]:
    """Every gap of the archive, per timeline in WAL order, with the backups it cuts."""
    present: dict[int, set[int]] = {}
    for name in archived:
        if is_segment(name):
            seg = Segment.parse(name, segment_size)
            present.setdefault(seg.timeline, set()).add(seg.segno)
    missing: dict[int, set[int]] = {}
    for timeline, numbers in present.items():
        # Holes between the oldest and the newest archived segment of the timeline.
        holes = set(range(min(numbers), max(numbers) + 1)) - numbers
        missing.setdefault(timeline, set()).update(holes)
    needs: dict[str, tuple[set[str], set[str]]] = {}  # backup -> (all it lacks, before end)
    for item in coverage:
        lacking = set(item.missing) | set(item.gaps_after)
        needs[item.backup_id] = (lacking, set(item.missing))
        for name in lacking:
            seg = Segment.parse(name, segment_size)
            missing.setdefault(seg.timeline, set()).add(seg.segno)
    gaps = []
    for timeline in sorted(missing):
        for first, last in _runs(missing[timeline]):
            names = {segment_name(timeline, n, segment_size) for n in range(first, last + 1)}
            cut = [b for b, (lacking, _) in needs.items() if lacking & names]
            dead = [b for b, (_, before_end) in needs.items() if before_end & names]
            gaps.append(
                WalGap(
                    timeline,
                    segment_name(timeline, first, segment_size),
                    segment_name(timeline, last, segment_size),
                    last - first + 1,
                    tuple(sorted(cut)),
                    tuple(sorted(dead)),
                )
            )
    return gaps
