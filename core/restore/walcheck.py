"""Before a restore without a recovery target: is the WAL from the backup's end on unbroken?

Without a target, recovery replays the archive to its end, following the newest timeline
(recovery_target_timeline = latest). A segment missing from the backup's begin_wal to its
end_wal means the restored server never becomes consistent; one missing after it means
recovery stops at the hole and the server opens without every later transaction. Either is
said before anything is downloaded, naming the first missing segment, and fails the restore
(exit 1) unless the operator accepts it (`RestoreRequest.accept_wal_gap`, `--accept-wal-gap`),
when it becomes a warning of the result. The rules are check-wal-archive's (core.wal.check).
"""

from __future__ import annotations

import logging

from core.errors import OperationFailed
from core.restore.state import RestoreRun
from core.wal.check import BackupCoverage, archived_wals, check_backups, read_histories

ACCEPT_FLAG = "--accept-wal-gap"


def _problem(coverage: BackupCoverage) -> str | None:
    backup = coverage.backup_id
    if coverage.missing:
        return (
            f"backup {backup} cannot reach consistency: WAL segment {coverage.missing[0]} is "
            f"missing from the archive ({len(coverage.missing)} of the segments from "
            f"{coverage.begin_wal} to {coverage.end_wal} are missing)"
        )
    if coverage.gaps_after:
        until = coverage.recoverable_until or coverage.end_wal
        return (
            f"the WAL archive has a hole after backup {backup}: first missing segment "
            f"{coverage.gaps_after[0]} ({len(coverage.gaps_after)} missing before the newest "
            f"archived segment); recovery would stop after {until} and lose what follows"
        )
    return None


def check_wal_continuity(run: RestoreRun) -> None:
    """Fail (or warn, when accepted) if the archive cannot replay from the backup to its end."""
    if run.request.target.kind is not None:
        return  # a target may lie before any hole; recovery says so itself if not
    info = run.plan.info
    if not info.begin_wal or not info.end_wal:
        return  # nothing to check against (barman-cloud wrote no WAL position)
    run.reporter.phase("checking WAL continuity")
    archived = archived_wals(run.store, run.request.server)
    histories = read_histories(run.store, archived)
    coverage = check_backups([info], archived.keys(), histories)
    problem = _problem(coverage[0]) if coverage else None
    if problem is None:
        return
    if not run.request.accept_wal_gap:
        raise OperationFailed(
            f"{problem}; archive the missing WAL, restore with a recovery target before the "
            f"hole, or accept it with {ACCEPT_FLAG}"
        )
    run.warnings.append(f"{problem} (accepted with {ACCEPT_FLAG})")
    run.reporter.log(run.warnings[-1], logging.WARNING)


__all__ = ["ACCEPT_FLAG", "check_wal_continuity"]
