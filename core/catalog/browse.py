"""What a destination holds, for browsing: its servers, a server's WAL archive and its gaps.

The console's catalog and WAL views call these from worker threads; each is a handful of
listings (one per server, one for the WAL archive) and never reads backup data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.catalog.backup_info import BackupInfo
from core.postgres.walnames import (
    DEFAULT_SEGMENT_SIZE,
    Segment,
    is_backup_label,
    is_history,
    is_partial,
    is_segment,
    segment_name,
)
from core.storage import CommonPrefix, ObjectStore
from core.wal.check import BackupCoverage, archived_wals, check_backups, read_histories
from core.wal.gaps import WalGap, archive_gaps

#: what a directory directly under a destination holds when it is a server's catalog
SERVER_MARKERS = ("base", "wals", "logical")


def list_servers(store: ObjectStore) -> list[str]:
    """The server names under a destination (directories holding base/, wals/ or logical/),
    sorted."""
    servers = []
    for item in store.list_entries("", delimiter="/"):
        if not isinstance(item, CommonPrefix):
            continue
        name = item.prefix.rstrip("/").rsplit("/", 1)[-1]
        if not name or name.startswith("."):
            continue
        children = {
            child.prefix.rstrip("/").rsplit("/", 1)[-1]
            for child in store.list_entries(f"{name}/", delimiter="/")
            if isinstance(child, CommonPrefix)
        }
        if children.intersection(SERVER_MARKERS):
            servers.append(name)
    return sorted(servers)


def no_backups_here(store: ObjectStore, server: str) -> str:
    """'server pg2 has no backups in file:///x; the servers there: pg1' (for a name mistyped
    or a server that never sent anything)."""
    others = [name for name in list_servers(store) if name != server]
    there = f"the servers there: {', '.join(others)}" if others else "it holds no server"
    return f"server {server} has no backups in {store.describe()}; {there}"


@dataclass(frozen=True)
class WalStretch:
    """Consecutive archived segments on one timeline."""

    timeline: int
    first: str
    last: str
    segments: int


@dataclass(frozen=True)
class WalArchive:
    """A server's WAL archive summarised: what is there, what is missing, what each backup has."""

    server: str
    segment_size: int
    segments: int
    partials: int
    backup_labels: int
    timelines: tuple[int, ...]
    histories: tuple[int, ...]
    stretches: tuple[WalStretch, ...]
    gaps: tuple[WalGap, ...]
    coverage: tuple[BackupCoverage, ...]

    @property
    def newest(self) -> str | None:
        return self.stretches[-1].last if self.stretches else None

    @property
    def oldest(self) -> str | None:
        return self.stretches[0].first if self.stretches else None


def stretches_and_gaps(
    names: Iterable[str], segment_size: int = DEFAULT_SEGMENT_SIZE
) -> tuple[list[WalStretch], list[WalGap]]:
    """Group segment names into runs of consecutive segments per timeline, and the holes."""
    by_timeline: dict[int, list[int]] = {}
    for name in names:
        if is_segment(name):
            seg = Segment.parse(name, segment_size)
            by_timeline.setdefault(seg.timeline, []).append(seg.segno)
    stretches: list[WalStretch] = []
    gaps: list[WalGap] = []
    for timeline in sorted(by_timeline):
        numbers = sorted(set(by_timeline[timeline]))
        start = previous = numbers[0]
        for number in [*numbers[1:], None]:
            if number is not None and number == previous + 1:
                previous = number
                continue
            stretches.append(
                WalStretch(
                    timeline,
                    segment_name(timeline, start, segment_size),
                    segment_name(timeline, previous, segment_size),
                    previous - start + 1,
                )
            )
            if number is not None:
                gaps.append(
                    WalGap(
                        timeline,
                        segment_name(timeline, previous + 1, segment_size),
                        segment_name(timeline, number - 1, segment_size),
                        number - previous - 1,
                    )
                )
                start = previous = number
    return stretches, gaps


def wal_archive(store: ObjectStore, server: str, backups: Sequence[BackupInfo] = ()) -> WalArchive:
    """List the server's WAL archive and check every DONE backup's WAL against it."""
    archived = archived_wals(store, server)
    sizes = [b.xlog_segment_size for b in backups if b.xlog_segment_size]
    segment_size = sizes[-1] if sizes else DEFAULT_SEGMENT_SIZE
    names = list(archived)
    stretches, _ = stretches_and_gaps(names, segment_size)
    histories = read_histories(store, archived) if any(is_history(n) for n in names) else {}
    coverage = check_backups(backups, archived, histories) if backups else []
    # The holes between stretches and the segments backups lack, each with what it cuts.
    gaps = archive_gaps(archived, coverage, segment_size)
    return WalArchive(
        server=server,
        segment_size=segment_size,
        segments=sum(1 for n in names if is_segment(n)),
        partials=sum(1 for n in names if is_partial(n)),
        backup_labels=sum(1 for n in names if is_backup_label(n)),
        timelines=tuple(sorted({s.timeline for s in stretches})),
        histories=tuple(sorted(int(n[:8], 16) for n in names if is_history(n))),
        stretches=tuple(stretches),
        gaps=tuple(gaps),
        coverage=tuple(coverage),
    )


__all__ = [
    "WalArchive",
    "WalGap",
    "WalStretch",
    "list_servers",
    "stretches_and_gaps",
    "wal_archive",
]
