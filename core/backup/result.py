"""What a finished backup reports, and its one-line summary for operators."""

from __future__ import annotations

from dataclasses import dataclass

from core.catalog.manifest import ArchiveRecord

MiB = 1024**2


@dataclass(frozen=True)
class BackupResult:
    """What a finished backup reports."""

    backup_id: str
    server: str
    status: str
    timeline: int
    begin_lsn: str
    end_lsn: str
    begin_wal: str
    end_wal: str
    files: int
    bytes_read: int
    bytes_stored: int
    archives: tuple[ArchiveRecord, ...]
    elapsed: float
    compression: str | None
    excluded: dict[str, int]
    kind: str = "full"  # full, incremental or differential
    parent: str | None = None
    method: str | None = None  # how changed blocks were found (page-lsn, wal-summary)
    fallback: str | None = None  # why a full backup was taken instead of an incremental


def result_summary(result: BackupResult) -> str:
    """One line for operators: ID, size read and stored, rate, time."""
    if result.kind == "snapshot":  # the data is in disk snapshots: nothing was read here
        return (
            f"snapshot backup {result.backup_id}: disk snapshots completed, backup_label and "
            f"backup.info stored, {result.elapsed:.1f} s, WAL {result.begin_wal}..{result.end_wal}"
        )
    rate = result.bytes_read / result.elapsed / MiB if result.elapsed else 0.0
    return (
        f"backup {result.backup_id}: {result.files} files, "
        f"{result.bytes_read / MiB:.1f} MiB read, {result.bytes_stored / MiB:.1f} MiB stored"
        f" ({result.compression or 'no compression'}), {result.elapsed:.1f} s, "
        f"{rate:.1f} MiB/s, WAL {result.begin_wal}..{result.end_wal}"
    ) + _kind_note(result)


def _kind_note(result: BackupResult) -> str:
    """Nothing for a plain full backup: its summary is as it always was."""
    if result.parent is not None:
        return f"; {result.kind} of {result.parent}, changes found by {result.method}"
    if result.fallback is not None:
        return f"; full backup instead of an incremental: {result.fallback}"
    return ""
