"""check-wal-archive: is an archive safe for a new server, and does every backup have its WAL?

`check_archive_usable` is barman-cloud's rule: without a timeline the archive must hold no
WAL at all; with timeline N it must hold nothing on timeline N or later.

`check_backups` is the gap check: for every DONE backup, every segment from its begin_wal to
its end_wal must be archived (else it cannot be restored), and the WAL after it, along the
timeline history PostgreSQL would follow (recovery_target_timeline = latest, or the timeline
a restore names: core.wal.timelines), must have no hole up to the newest archived segment
(else point-in-time recovery stops at the hole).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from core.catalog.backup_info import DONE, BackupInfo
from core.catalog.layout import ServerLayout
from core.codecs import codec_for_suffix
from core.encryption import open_object
from core.errors import PgvaultError
from core.postgres.walnames import (
    DEFAULT_SEGMENT_SIZE,
    HistoryEntry,
    Segment,
    is_history,
    is_segment,
    parse_history,
    segment_name,
    segment_number,
)
from core.storage import ObjectInfo, ObjectStore
from core.wal.archive import decompress_object
from core.wal.errors import ArchiveNotUsable

log = logging.getLogger("pgvault.wal")


def archived_wals(store: ObjectStore, server: str) -> dict[str, str]:
    """WAL name -> key for every WAL-like object under <server>/wals/ (as barman lists)."""
    return {name: info.key for name, info in archived_objects(store, server).items()}


def archived_objects(store: ObjectStore, server: str) -> dict[str, ObjectInfo]:
    """WAL name -> its listed object (key, size, time stored) under <server>/wals/."""
    layout = ServerLayout(server)
    found: dict[str, ObjectInfo] = {}
    for info in store.list_objects(layout.wals_prefix):
        parsed = layout.parse_wal(info.key)
        if parsed is not None:
            found[parsed[0]] = info
    return found


def wal_timeline(name: str) -> int:
    return int(name[:8], 16)


def check_archive_usable(names: Iterable[str], timeline: int | None = None) -> None:
    """barman-cloud's check; ArchiveNotUsable (exit 1) when a new server must not use it."""
    names = sorted(names)
    if timeline is None:
        if names:
            raise ArchiveNotUsable(
                f"expected an empty WAL archive, found {len(names)} file(s) "
                f"(first {names[0]}); use --timeline for a server on a new timeline"
            )
        return
    if timeline < 1:
        raise ArchiveNotUsable(f"invalid timeline {timeline}")
    unexpected = [n for n in names if wal_timeline(n) >= timeline]
    if unexpected:
        plural = "s" if len(unexpected) > 1 else ""
        raise ArchiveNotUsable(
            f"found {len(unexpected)} file{plural} in the WAL archive equal to or newer than "
            f"timeline {timeline} (first {unexpected[0]})"
        )


# ---- the gap check ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """Segments of one (begin_wal, end_wal, timeline) range that the archive lacks."""

    begin_wal: str
    end_wal: str
    timeline: int
    missing: tuple[str, ...]


def missing_segments(
    ranges: Iterable[tuple[str, str, int]],
    archived: Collection[str],
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> list[Gap]:
    """For each (begin_wal, end_wal, timeline), the segments in between not in `archived`.

    Segment numbers come from the names; the segments looked for are named on `timeline`.
    Only ranges with something missing are returned. A `.partial` does not count.
    """
    gaps = []
    for begin, end, timeline in ranges:
        first = Segment.parse(begin, segment_size).segno
        last = Segment.parse(end, segment_size).segno
        missing = tuple(
            name
            for name in (segment_name(timeline, n, segment_size) for n in range(first, last + 1))
            if name not in archived
        )
        if missing:
            gaps.append(Gap(begin, end, timeline, missing))
    return gaps


@dataclass(frozen=True)
class Stretch:
    """Segments first..last (numbers) on one timeline."""

    timeline: int
    first: int
    last: int

    def names(self, segment_size: int) -> list[str]:
        return [
            segment_name(self.timeline, n, segment_size) for n in range(self.first, self.last + 1)
        ]


def timeline_path(
    timeline: int,
    start: int,
    histories: dict[int, list[HistoryEntry]],
    newest: dict[int, int],
    segment_size: int,
    follow: int | None = None,
) -> list[Stretch]:
    """The segments recovery replays from segment `start` on `timeline` to the newest WAL.

    It follows timeline `follow` (None: the highest timeline whose history holds segment
    `start` of `timeline`); each parent ends before the segment holding the switch point,
    which the child's first segment carries.
    """
    if follow is None:
        # A timeline that left `timeline` before `start` does not hold it: WAL written on
        # `timeline` after a fork stays on `timeline` (the copy promoted has its own history).
        descendants = [
            tli
            for tli, entries in histories.items()
            if any(
                e.parent_timeline == timeline and e.switch_lsn > start * segment_size
                for e in entries
            )
        ]
        follow = max([timeline, *descendants])
    target = follow
    switches = {e.parent_timeline: e.switch_lsn for e in histories.get(target, [])}
    path = [*sorted(t for t in switches if t >= timeline), target]
    stretches = []
    first = start
    for tli in path:
        if tli in switches and tli != target:
            switch_segment = segment_number(switches[tli], segment_size)
            last = switch_segment - 1
        else:
            switch_segment = None
            last = newest.get(tli, first - 1)
        if last >= first:
            stretches.append(Stretch(tli, first, last))
        if switch_segment is not None:
            first = max(first, switch_segment)
    return stretches


@dataclass
class BackupCoverage:
    """What the archive holds for one backup."""

    backup_id: str
    begin_wal: str
    end_wal: str
    timeline: int
    missing: list[str] = field(default_factory=list)
    gaps_after: list[str] = field(default_factory=list)
    recoverable_until: str | None = None
    #: every segment recovery replays, from begin_wal along the followed timeline's history
    path: list[str] = field(default_factory=list, repr=False)
    segment_size: int = field(default=DEFAULT_SEGMENT_SIZE, repr=False)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.gaps_after


def read_histories(store: ObjectStore, archived: dict[str, str]) -> dict[int, list[HistoryEntry]]:
    """Every timeline history file of the archive, parsed; unreadable ones are skipped."""
    histories = {}
    for name, key in archived.items():
        if not is_history(name):
            continue
        _, codec = codec_for_suffix(key)
        try:
            raw = open_object(store, key.split("/", 1)[0], store.get_bytes(key), key)
            text = decompress_object(key, codec, raw).decode("utf-8")
            histories[wal_timeline(name)] = parse_history(text)
        except (PgvaultError, UnicodeDecodeError) as exc:
            log.warning("ignoring unreadable history file %s: %s", key, exc)
    return histories


def check_backups(
    backups: Iterable[BackupInfo],
    archived: Collection[str],
    histories: dict[int, list[HistoryEntry]],
    follow: int | None = None,
) -> list[BackupCoverage]:
    """The gap check over every DONE backup (others cannot be restored anyway), along
    timeline `follow` (None: each backup's newest descendant)."""
    results = []
    for info in backups:
        if info.status != DONE or not info.begin_wal or not info.end_wal:
            continue
        size = info.xlog_segment_size or DEFAULT_SEGMENT_SIZE
        segments = [Segment.parse(n, size) for n in archived if is_segment(n)]
        newest: dict[int, int] = {}
        for seg in segments:
            newest[seg.timeline] = max(newest.get(seg.timeline, -1), seg.segno)
        begin = Segment.parse(info.begin_wal, size)
        end = Segment.parse(info.end_wal, size)
        timeline = info.timeline or begin.timeline
        coverage = BackupCoverage(info.backup_id, info.begin_wal, info.end_wal, timeline)
        # A backup ends on its own timeline unless the server was promoted meanwhile.
        newest_for_path = dict(newest)
        newest_for_path[end.timeline] = max(newest.get(end.timeline, -1), end.segno)
        path = timeline_path(begin.timeline, begin.segno, histories, newest_for_path, size, follow)
        names: list[str] = []
        for stretch in path:
            names.extend(stretch.names(size))
        coverage.path, coverage.segment_size = names, size
        needed_end = segment_name(end.timeline, end.segno, size)
        consistency = names[: names.index(needed_end) + 1] if needed_end in names else names
        coverage.missing = [n for n in consistency if n not in archived]
        after = names[len(consistency) :]
        coverage.gaps_after = [n for n in after if n not in archived]
        if not coverage.missing:
            first_hole = next((n for n in names if n not in archived), None)
            before = names[: names.index(first_hole)] if first_hole else names
            coverage.recoverable_until = before[-1] if before else None
        results.append(coverage)
    return results
