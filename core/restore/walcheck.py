"""Before a restore: can the archive's WAL take the backup where the operator asked?

A segment missing from the backup's begin_wal to its end_wal means the restored server never
becomes consistent, whatever the target. Without a target, recovery replays the archive to
its end, following the newest timeline (recovery_target_timeline = latest): one missing after
the backup means recovery stops at the hole and the server opens without every later
transaction. Either is said before anything is downloaded, naming the first missing segment,
and fails the restore (exit 1) unless the operator accepts it (`RestoreRequest.accept_wal_gap`,
`--accept-wal-gap`), when it becomes a warning of the result. The rules are
check-wal-archive's (core.wal.check).

A time or LSN target past everything archived cannot be reached yet: PostgreSQL 13 and later
then refuse to start ("recovery ended before configured recovery target was reached"). The
restore is still right once the source archives past the target, so that is a warning.
"""

from __future__ import annotations

from core.errors import OperationFailed
from core.postgres.walnames import (
    DEFAULT_SEGMENT_SIZE,
    Segment,
    format_lsn,
    is_partial,
    is_segment,
    parse_lsn,
)
from core.restore.state import RestoreRun
from core.restore.targets import parse_time
from core.storage import ObjectInfo
from core.wal.check import BackupCoverage, archived_objects, check_backups, read_histories

ACCEPT_FLAG = "--accept-wal-gap"


def _problem(coverage: BackupCoverage, targeted: bool) -> str | None:
    """The hole that fails the restore: one inside the backup always, one after it only
    without a target (a target may lie before it; see _target_beyond)."""
    backup = coverage.backup_id
    if coverage.missing:
        return (
            f"backup {backup} cannot reach consistency: WAL segment {coverage.missing[0]} is "
            f"missing from the archive ({len(coverage.missing)} of the segments from "
            f"{coverage.begin_wal} to {coverage.end_wal} are missing)"
        )
    if coverage.gaps_after and not targeted:
        until = coverage.recoverable_until or coverage.end_wal
        return (
            f"the WAL archive has a hole after backup {backup}: first missing segment "
            f"{coverage.gaps_after[0]} ({len(coverage.gaps_after)} missing before the newest "
            f"archived segment); recovery would stop after {until} and lose what follows"
        )
    return None


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
    coverage = check_backups([info], archived.keys(), histories)
    targeted = run.request.target.kind is not None
    problem = _problem(coverage[0], targeted) if coverage else None
    if problem is not None:
        if not run.request.accept_wal_gap:
            raise OperationFailed(
                f"{problem}; archive the missing WAL, restore with a recovery target before "
                f"the hole, or accept it with {ACCEPT_FLAG}"
            )
        run.warnings.append(f"{problem} (accepted with {ACCEPT_FLAG})")
    beyond = _target_beyond(run, stored)
    if beyond is not None:
        run.warnings.append(beyond)  # logged with the others when the restore is done


def _target_beyond(run: RestoreRun, stored: dict[str, ObjectInfo]) -> str | None:
    """Why a time or LSN target lies past every archived segment, if it does."""
    target = run.request.target
    if target.time is None and target.lsn is None:
        return None
    size = run.plan.info.xlog_segment_size or DEFAULT_SEGMENT_SIZE
    segments = [
        (Segment.parse(name, size), item)
        for name, item in stored.items()
        if is_segment(name) or is_partial(name)
    ]
    if not segments:
        return None
    newest = max(segment.segno for segment, _ in segments)
    advice = (
        "PostgreSQL 13 and later refuse to start when recovery ends before its target: let "
        "the source archive past it (pg_switch_wal() there, or archive_timeout) before starting "
        "the restored server, or restore without a target"
    )
    if target.lsn is not None:
        end = (newest + 1) * size
        if parse_lsn(target.lsn) > end:
            return (
                f"recovery target LSN {target.lsn} lies past the archived WAL, which ends at "
                f"{format_lsn(end)}; {advice}"
            )
    if target.time is not None:
        last = max((item.modified for _, item in segments if item.modified), default=None)
        if last is not None and parse_time(target.time) >= last:
            return (
                f"recovery target time {target.time} is after the newest archived WAL was "
                f"stored ({last.isoformat(sep=' ', timespec='seconds')}): no transaction "
                f"after the target is archived yet; {advice}"
            )
    return None


__all__ = ["ACCEPT_FLAG", "check_wal_continuity"]
