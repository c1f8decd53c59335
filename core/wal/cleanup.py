"""Which archived WAL a backup's deletion frees: barman-cloud's rule (reference §4.4), made safe.

After backup B is deleted (B is still in `backups` when this runs):

1. Walk back through the DONE backups before B. None: WAL may go. One without a keep
   annotation, or with keep:full: it needs every WAL after it, so nothing goes. One with
   keep:standalone: its [begin_wal, end_wal] is protected and the walk goes on (a `-b`
   deletion stops here and removes nothing, as barman's does).
2. The cutoff is the begin_wal of the next DONE backup after B, or B's own begin_wal.
3. WAL on another timeline that still has a backup is kept; `.history` files are never
   removed; `.backup` and `.partial` files are compared by their segment name.
4. Everything else named below the cutoff goes.

What pgvault adds, so that nothing still needed is ever removed:
- A STARTED backup (one may be running right now) keeps the WAL from its begin_wal on: the
  cutoff never passes it. One that has no begin_wal yet (pg_backup_start has not returned)
  stops WAL removal altogether for this run, unless it is known to have died.
- The cutoff never passes the begin_wal of any remaining DONE backup on its timeline (backup
  IDs are wall-clock times; a clock set back must not make a later backup's WAL look old).
- Every remaining keep:standalone backup's range is protected, not only those behind B.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from core.catalog.backup_info import DONE, STARTED, BackupInfo
from core.catalog.keep import KEEP_STANDALONE
from core.postgres.walnames import is_history, is_segment


@dataclass(frozen=True)
class WalCleanup:
    """The WAL one deletion frees, and why (or why nothing)."""

    deleted: str  # the deleted backup's ID
    reason: str  # one line for operators
    cutoff: str | None = None  # WAL named below this may go
    protected_ranges: tuple[tuple[str, str], ...] = ()
    protected_timelines: tuple[int, ...] = ()
    #: (WAL name, object key) to delete, sorted by key
    remove: tuple[tuple[str, str], ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(key for _, key in self.remove)


def _timeline(info: BackupInfo) -> int | None:
    if info.timeline is not None:
        return info.timeline
    if info.begin_wal and is_segment(info.begin_wal[:24]):
        return int(info.begin_wal[:8], 16)
    return None


class _NothingRemoved(Exception):
    """Why this deletion frees no WAL (one line for operators)."""


def plan_wal_cleanup(
    deleted: BackupInfo,
    backups: Sequence[BackupInfo],
    keeps: Mapping[str, str],
    archived: Iterable[tuple[str, str]],
    *,
    skip_if_standalone: bool,
    dead: Collection[str] = (),
) -> WalCleanup:
    """What to remove from `archived` ((name, key) pairs) once `deleted` is gone.

    `backups` is the whole catalog, `deleted` included. `dead` names STARTED backups known
    to have died (their process is gone), which protect nothing.
    """
    ordered = sorted(backups, key=lambda b: b.backup_id)
    others = [b for b in ordered if b.backup_id != deleted.backup_id]
    try:
        ranges = _walk_back(deleted, others, keeps, skip_if_standalone)
        until = _until(deleted, others)
        cutoff, held_by = _cutoff(deleted, until, others, keeps, dead, ranges)
    except _NothingRemoved as why:
        return WalCleanup(deleted.backup_id, f"no WAL removed: {why}")
    timeline = _timeline(until)
    protected_timelines = {t for b in others if (t := _timeline(b)) is not None} - {timeline}
    remove = _below(cutoff, archived, ranges, protected_timelines)
    unique_ranges = tuple(sorted(set(ranges)))
    reason = f"WAL before {cutoff} (the first WAL of backup {held_by}) is no longer needed"
    if unique_ranges:
        kept = ", ".join(f"{low}..{high}" for low, high in unique_ranges)
        reason += f"; keep:standalone ranges kept: {kept}"
    return WalCleanup(
        deleted.backup_id,
        reason,
        cutoff=cutoff,
        protected_ranges=unique_ranges,
        protected_timelines=tuple(sorted(protected_timelines)),
        remove=remove,
    )


def _walk_back(
    deleted: BackupInfo,
    others: list[BackupInfo],
    keeps: Mapping[str, str],
    skip_if_standalone: bool,
) -> list[tuple[str, str]]:
    """Step 1: the keep:standalone ranges behind the deleted backup, newest first."""
    done_before = [b for b in others if b.status == DONE and b.backup_id < deleted.backup_id]
    ranges: list[tuple[str, str]] = []
    for previous in reversed(done_before):
        if keeps.get(previous.backup_id) != KEEP_STANDALONE:
            raise _NothingRemoved(f"the older backup {previous.backup_id} needs every WAL after it")
        if skip_if_standalone:
            raise _NothingRemoved(
                f"the older backup {previous.backup_id} is keep:standalone "
                "(WAL cleanup then happens only in retention runs)"
            )
        if previous.begin_wal and previous.end_wal:
            ranges.append((previous.begin_wal, previous.end_wal))
    return ranges


def _until(deleted: BackupInfo, others: list[BackupInfo]) -> BackupInfo:
    """Step 2: the backup whose begin_wal is the cutoff (the next DONE one, or B itself)."""
    following = [b for b in others if b.status == DONE and b.backup_id > deleted.backup_id]
    until = following[0] if following else deleted
    if not until.begin_wal or not is_segment(until.begin_wal):
        raise _NothingRemoved(f"backup {until.backup_id} has no begin WAL")
    return until


def _cutoff(
    deleted: BackupInfo,
    until: BackupInfo,
    others: list[BackupInfo],
    keeps: Mapping[str, str],
    dead: Collection[str],
    ranges: list[tuple[str, str]],
) -> tuple[str, str]:
    """(cutoff, the backup holding it): never past a remaining backup's first WAL on the
    same timeline; the standalone ranges of every remaining backup are added to `ranges`."""
    timeline = _timeline(until)
    cutoff, held_by = str(until.begin_wal), until.backup_id
    for other in others:
        begin = other.begin_wal if other.begin_wal and is_segment(other.begin_wal) else None
        if other.status == STARTED and other.backup_id not in dead:
            if begin is None:
                raise _NothingRemoved(
                    f"backup {other.backup_id} is starting and its first WAL is not known yet"
                )
        elif other.status != DONE:
            continue
        elif keeps.get(other.backup_id) == KEEP_STANDALONE:
            if other.begin_wal and other.end_wal:
                ranges.append((other.begin_wal, other.end_wal))
            continue
        elif other.backup_id < deleted.backup_id:
            continue  # only keep:standalone ones are left behind B (step 1)
        if begin is not None and _timeline(other) == timeline and begin < cutoff:
            cutoff, held_by = begin, other.backup_id
    return cutoff, held_by


def _below(
    cutoff: str,
    archived: Iterable[tuple[str, str]],
    ranges: list[tuple[str, str]],
    protected_timelines: set[int],
) -> tuple[tuple[str, str], ...]:
    """Steps 3 and 4: what is named below the cutoff and protected by nothing, by key."""
    remove = []
    for name, key in archived:
        if is_history(name) or int(name[:8], 16) in protected_timelines:
            continue
        segment = name[:24]
        if any(low <= segment <= high for low, high in ranges):
            continue
        if segment < cutoff:
            remove.append((name, key))
    return tuple(sorted(remove, key=lambda item: item[1]))


__all__ = ["WalCleanup", "plan_wal_cleanup"]
