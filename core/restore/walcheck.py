"""Before a restore: can the archive's WAL take the backup where the operator asked?

Recovery replays from the backup along the history of the timeline it follows (--target-tli
N, the backup's own for `current`, else PostgreSQL's default `latest`: core.wal.timelines):
the parent timelines' segments up to each switch point, then that timeline's. A segment
missing from the backup's begin_wal to its end_wal means the restored server never becomes
consistent, whatever the target. One missing after the backup makes recovery stop at the
hole: without a target the server opens without every later transaction; with a target LSN
at or past the hole, or a target time before which WAL after the hole was archived, it
stops short of the target. Each is said before anything is downloaded, naming the first
missing segment, and fails the restore (exit 1) unless the operator accepts it
(`RestoreRequest.accept_wal_gap`, `--accept-wal-gap`), when it becomes a warning of the
result. A hole the target may or may not lie past (a time the archive's times cannot place,
a transaction ID, a restore point) is a warning. The rules are check-wal-archive's
(core.wal.check).

A time or LSN target past everything the followed timeline archived cannot be reached yet:
PostgreSQL 13 and later then refuse to start ("recovery ended before configured recovery
target was reached"). The restore is still right once the source archives past the target,
so that is a warning.
"""

from __future__ import annotations

from datetime import datetime

from core.errors import OperationFailed
from core.postgres.walnames import Segment, format_lsn, is_history, parse_lsn
from core.restore.state import RestoreRun
from core.restore.targets import RecoveryTarget, parse_time
from core.storage import ObjectInfo
from core.wal.check import BackupCoverage, archived_objects, check_backups, read_histories
from core.wal.timelines import followed_timeline

ACCEPT_FLAG = "--accept-wal-gap"


def _hole(coverage: BackupCoverage, follow: int) -> str:
    """The first hole after the backup, in words."""
    until = coverage.recoverable_until or coverage.end_wal
    return (
        f"the WAL archive has a hole after backup {coverage.backup_id} on the history of "
        f"timeline {follow}: first missing segment {coverage.gaps_after[0]} "
        f"({len(coverage.gaps_after)} missing before the newest archived segment); recovery "
        f"would stop after {until}"
    )


def _stored(names: list[str], stored: dict[str, ObjectInfo]) -> list[datetime]:
    found = (stored[n].modified for n in names if n in stored)
    return [moment for moment in found if moment is not None]


def _time_verdict(
    coverage: BackupCoverage, target: str, stored: dict[str, ObjectInfo], hole: str
) -> tuple[str | None, str | None]:
    """A time target against the hole, by when the segments around it were archived."""
    when = parse_time(target)
    index = coverage.path.index(coverage.gaps_after[0])
    later = _stored(coverage.path[index + 1 :], stored)
    reached = [moment for moment in later if moment <= when]
    if reached:
        return (
            f"recovery target time {target} lies past a hole in the WAL: a segment after it "
            f"was archived at {min(reached).isoformat(sep=' ', timespec='seconds')}, before "
            f"the target; {hole}",
            None,
        )
    earlier = _stored(coverage.path[:index], stored)
    if not later or not earlier or max(earlier) < when:
        # The WAL before the hole may end before the target: the target may be in the hole.
        return None, f"recovery target time {target} may lie in or past a hole: {hole}"
    return None, None


def hole_verdict(
    coverage: BackupCoverage, target: RecoveryTarget, stored: dict[str, ObjectInfo], follow: int
) -> tuple[str | None, str | None]:
    """(what fails the restore unless accepted, what is only warned) about missing WAL."""
    if coverage.missing:
        return (
            f"backup {coverage.backup_id} cannot reach consistency: WAL segment "
            f"{coverage.missing[0]} is missing from the archive ({len(coverage.missing)} of "
            f"the segments from {coverage.begin_wal} to {coverage.end_wal} are missing)",
            None,
        )
    if not coverage.gaps_after or target.immediate:
        return None, None
    hole = _hole(coverage, follow)
    if target.kind is None:
        return f"{hole} and lose what follows", None
    if target.lsn is not None:
        return _lsn_verdict(coverage, target.lsn, hole)
    if target.time is not None:
        return _time_verdict(coverage, target.time, stored, hole)
    what = f"recovery target {target.kind} {getattr(target, target.kind)}"
    return None, f"{what} cannot be placed in the WAL; if it lies past the hole, {hole}"


def _lsn_verdict(coverage: BackupCoverage, target: str, hole: str) -> tuple[str | None, None]:
    size = coverage.segment_size
    start = Segment.parse(coverage.gaps_after[0], size).segno * size
    if start <= parse_lsn(target):
        return (
            f"recovery target LSN {target} lies past a hole in the WAL, which starts at "
            f"{format_lsn(start)}; {hole}",
            None,
        )
    return None, None


def check_wal_continuity(run: RestoreRun) -> None:
    """Fail (or warn, when accepted) if the archive cannot replay from the backup to its end,
    or to its target; warn if the target lies past everything archived."""
    info = run.plan.info
    if not info.begin_wal or not info.end_wal:
        return  # nothing to check against (barman-cloud wrote no WAL position)
    run.reporter.phase("checking WAL continuity")
    stored = archived_objects(run.store, run.request.server)
    archived = {name: item.key for name, item in stored.items()}
    histories = read_histories(run.store, archived)
    target = run.request.target
    history_files = {int(name[:8], 16) for name in archived if is_history(name)}
    follow = followed_timeline(target.timeline, info.timeline or 1, history_files, info.version)
    # Without the followed timeline's history (unreadable here), its newest readable descendant.
    path_follow = follow if follow in histories or follow == (info.timeline or 1) else None
    coverage = check_backups([info], archived.keys(), histories, path_follow)
    if not coverage:
        return
    problem, warning = hole_verdict(coverage[0], target, stored, follow)
    if problem is not None:
        if not run.request.accept_wal_gap:
            raise OperationFailed(
                f"{problem}; archive the missing WAL, restore with a recovery target before "
                f"the hole, or accept it with {ACCEPT_FLAG}"
            )
        run.warnings.append(f"{problem} (accepted with {ACCEPT_FLAG})")
    if warning is not None:
        run.warnings.append(warning)
    beyond = _target_beyond(target, coverage[0], stored, follow)
    if beyond is not None:
        run.warnings.append(beyond)  # logged with the others when the restore is done


def _target_beyond(
    target: RecoveryTarget, coverage: BackupCoverage, stored: dict[str, ObjectInfo], follow: int
) -> str | None:
    """Why a time or LSN target lies past every segment the followed timeline archived."""
    if target.time is None and target.lsn is None:
        return None
    size = coverage.segment_size
    present = [name for name in coverage.path if name in stored]
    if not present:
        return None
    advice = (
        "PostgreSQL 13 and later refuse to start when recovery ends before its target: let "
        "the source archive past it (pg_switch_wal() there, or archive_timeout) before starting "
        "the restored server, or restore without a target"
    )
    if target.lsn is not None:
        end = (Segment.parse(present[-1], size).segno + 1) * size
        if parse_lsn(target.lsn) > end:
            return (
                f"recovery target LSN {target.lsn} lies past the archived WAL of timeline "
                f"{follow}'s history, which ends at {format_lsn(end)}; {advice}"
            )
    if target.time is not None:
        last = max(_stored(present, stored), default=None)
        if last is not None and parse_time(target.time) >= last:
            return (
                f"recovery target time {target.time} is after the newest archived WAL was "
                f"stored ({last.isoformat(sep=' ', timespec='seconds')}, on the history of "
                f"timeline {follow}): no transaction after the target is archived yet; {advice}"
            )
    return None


__all__ = ["ACCEPT_FLAG", "check_wal_continuity", "hole_verdict"]
