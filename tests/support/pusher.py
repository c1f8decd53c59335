"""The real Pusher run in a thread, as archive_command's start_pusher would run a process."""

from __future__ import annotations

import threading
from pathlib import Path

from core.progress import Tracker
from core.wal.archive import WalArchiver
from core.wal.pusher import BatchResult, BatchRunner, BatchWork, Pusher, PusherSettings
from core.wal.spool import ArchiveSpool


class PusherThread:
    """Runs the real Pusher in a thread, as archive_command's start_pusher would a process."""

    def __init__(
        self,
        archiver: WalArchiver,
        spool: ArchiveSpool,
        wal_dir: str,
        batch_runner: BatchRunner | None = None,
        secondary: WalArchiver | None = None,
    ) -> None:
        self.batches: list[Tracker] = []
        self.pusher = Pusher(
            archiver,
            spool,
            wal_dir,
            PusherSettings(jobs=3, idle_exit=0.5, rescan=0.05),
            batch_runner or self._tracked,
            secondary,
        )
        self.thread: threading.Thread | None = None

    def _tracked(self, names: list[str], work: BatchWork) -> BatchResult:
        lines: list[str] = []
        tracker = Tracker(on_log=lambda at, level, message: lines.append(message))
        tracker.logged = lines  # type: ignore[attr-defined]
        self.batches.append(tracker)
        return work(tracker)

    def start(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self.pusher.run, daemon=True)
            self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join(30)


def mark_done(wal_dir: str, name: str) -> None:
    """What PostgreSQL does once archive_command returned 0."""
    status = Path(wal_dir, "archive_status")
    (status / f"{name}.ready").rename(status / f"{name}.done")
