"""What a restore is asked (RestoreRequest) and what it reports (RestoreResult)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.restore.targets import RecoveryTarget
from core.snapshots.request import SnapshotRecovery
from core.storage import StoreConfig
from core.urls import Location

MiB = 1024 * 1024


@dataclass(frozen=True)
class RestoreRequest:
    """Everything a restore needs; built by the command line, a job or the console."""

    location: Location
    server: str
    backup: str  # an ID, a name, latest/oldest, or auto (only DONE backups restore)
    recovery_dir: str
    store_config: StoreConfig = field(default_factory=StoreConfig)
    tablespaces: tuple[tuple[str, str], ...] = ()  # (name, new location)
    target: RecoveryTarget = field(default_factory=RecoveryTarget)
    pgvault_command: str | None = None  # restore_command's executable (None: this pgvault)
    wal_credentials: str = "file"  # file or environment (core.restore.recovery)
    wal_restore_dir: str | None = None  # None: RECOVERY_DIR + '.pgvault'
    wal_prefetch: int = 4  # restore_command's -p
    archive_mode: str = "hold"  # hold, preserve or off (core.restore.recovery.ARCHIVE_MODES)
    sync: bool = True
    port: int | None = None  # the restored server's port (None: the source's, as restored)
    #: restore even when the WAL archive cannot replay from the backup to its end (walcheck)
    accept_wal_gap: bool = False
    #: restore into an existing data directory, keeping the files that match (core.restore.delta)
    delta: bool = False
    force: bool = False  # with delta: even over another cluster's directory
    #: a snapshot backup: its disks are already on this instance (core.snapshots.restore)
    snapshot: SnapshotRecovery | None = None
    #: set by core.restore.rerun: the directory holds a killed restore, continued as a delta
    continued: bool = False


@dataclass(frozen=True)
class RestoreResult:
    """What a finished restore reports."""

    backup_id: str
    server: str
    recovery_dir: str
    tablespaces: tuple[tuple[str, str], ...]  # (name, where it was restored)
    files: int
    bytes_written: int
    bytes_downloaded: int
    archives: int
    elapsed: float
    target: str
    restore_command: str
    credentials_file: str | None
    wal_restore_dir: str
    verified: tuple[str, ...]
    not_verified: tuple[str, ...]
    warnings: tuple[str, ...]
    kept_files: int = 0  # a delta restore's files already in place
    kept_bytes: int = 0
    chain: int = 0  # an incremental's: the backups of its chain restored (itself included)


def result_summary(result: RestoreResult) -> str:
    rate = result.bytes_written / result.elapsed / MiB if result.elapsed else 0.0
    downloaded = result.bytes_downloaded / MiB
    kept = (
        f" ({result.kept_files} files, {result.kept_bytes / MiB:.1f} MiB, kept as they were)"
        if result.kept_files
        else ""
    )
    backup, of = f"backup {result.backup_id}", ""
    if result.chain:  # the totals are the whole chain's, not the newest backup's alone
        older = result.chain - 1
        backup += f" with the {older} older backup{'s' if older > 1 else ''} of its chain"
        of = f" of {result.chain} backups"
    return (
        f"restored {backup} into {result.recovery_dir}: {result.files} files, "
        f"{result.bytes_written / MiB:.1f} MiB written{kept} ({downloaded:.1f} MiB "
        f"downloaded from {result.archives} archives{of}) in {result.elapsed:.1f} s, "
        f"{rate:.1f} MiB/s; recovery to {result.target}"
    )


__all__ = ["RestoreRequest", "RestoreResult", "result_summary"]
