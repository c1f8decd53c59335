"""PostgreSQL's archiver as pg_stat_archiver reports it: is archive_command failing now?

A backup ends only once its last segment is archived, and PostgreSQL retries a failing
archive_command forever. Without this, an operator sees a backup "stopping" for as long
as archiving fails, with the reason in the server log only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.postgres.connection import Session


@dataclass(frozen=True)
class ArchiverFailure:
    """The segment archive_command keeps failing on, and since when the archiver is stuck."""

    wal: str
    last_failed: datetime
    failed_count: int  # since the server started or the statistics were reset

    def describe(self) -> str:
        when = self.last_failed.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
        times = "once" if self.failed_count == 1 else f"{self.failed_count} times"
        return (
            f"archive_command fails on {self.wal} (failed {times} in all, last at {when}): "
            "see the server log"
        )


def archiver_failure(session: Session) -> ArchiverFailure | None:
    """The archiver's current failure: its last failure is newer than its last success."""
    rows = session.query(
        "SELECT last_failed_wal, last_failed_time, failed_count, last_archived_time"
        " FROM pg_stat_archiver",
        what="reading pg_stat_archiver",
    )
    if not rows:
        return None
    wal, failed_at, failed_count, archived_at = rows[0]
    if wal is None or failed_at is None:
        return None
    if archived_at is not None and archived_at >= failed_at:
        return None
    return ArchiverFailure(wal=str(wal), last_failed=failed_at, failed_count=int(failed_count))
