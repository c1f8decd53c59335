"""The fast path's background pusher: uploads every `.ready` WAL file, many at a time.

It scans `pg_wal/archive_status/*.ready`, pushes what it finds in batches of up to
`batch_max` files with `jobs` uploads in flight (each batch runs through a BatchRunner,
which records it as a job: core.wal.jobs), and writes `ok/<name>` in the spool only after the store
confirmed the object. A failure is written to `error/<name>` for archive_command to report.
It exits when archive_command has not called for `idle_exit` seconds.

Killing it at any moment loses nothing: a file is acknowledged to PostgreSQL only through a
marker, and a marker exists only for a stored object. The next pusher finds objects stored
without a marker and recognises them as identical (WalArchiver's comparison).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType

from core.errors import ExitCode, InputError, PgvaultError, own_cause
from core.postgres.walnames import is_history, is_wal_name
from core.progress import NullReporter, Reporter
from core.storage import ObjectInfo
from core.wal.archive import ArchiveResult, WalArchiver, read_wal_file, same_encryption
from core.wal.errors import LocalIOError
from core.wal.files import FileIdentity
from core.wal.spool import ArchiveSpool

log = logging.getLogger("pgvault.wal.pusher")

READY = ".ready"


@dataclass(frozen=True)
class PusherSettings:
    jobs: int = 4
    idle_exit: float = 30.0
    batch_max: int = 64
    #: how often to look at archive_status when nobody woke the pusher
    rescan: float = 0.2
    #: how long a failed file waits before the next attempt (unless archive_command asks)
    retry_after: float = 10.0


@dataclass
class BatchResult:
    pushed: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


#: one batch's work, given the Reporter it reports through
BatchWork = Callable[[Reporter], BatchResult]
#: runs a batch's work (names: the files in the batch), e.g. as a recorded job
BatchRunner = Callable[[list[str], BatchWork], BatchResult]


def run_unrecorded(names: list[str], work: BatchWork) -> BatchResult:
    """The batch runner when no job store records batches."""
    return work(NullReporter())


def archive_order(name: str) -> tuple[int, str]:
    """PostgreSQL archives history files first, then everything by name."""
    return (0 if is_history(name) else 1, name)


class Pusher:
    """One pusher per spool; run() returns when idle (or when another pusher holds the lock)."""

    def __init__(
        self,
        archiver: WalArchiver,
        spool: ArchiveSpool,
        wal_dir: str,
        settings: PusherSettings,
        batch_runner: BatchRunner = run_unrecorded,
        secondary: WalArchiver | None = None,
    ) -> None:
        self.archiver = archiver
        #: --secondary-destination: a file is acknowledged once both stores hold it
        self.secondary = secondary
        self.spool = spool
        self.wal_dir = wal_dir
        self.status_dir = os.path.join(wal_dir, "archive_status")
        self.settings = settings
        self.batch_runner = batch_runner
        self._wake = threading.Event()
        # name -> identity of files stored in this run (their marker may be consumed already)
        self._pushed: dict[str, FileIdentity] = {}
        self._failed_at: dict[str, float] = {}
        self.total = BatchResult()

    # ---- the loop ---------------------------------------------------------------------------

    def run(self) -> BatchResult:
        self.spool.prepare()
        # Signals reach only the main thread; elsewhere the pusher relies on its rescans.
        signals = threading.current_thread() is threading.main_thread()
        if not self.spool.acquire_lock(wait=2.0, signallable=signals):
            log.info("another pusher runs for %s", self.spool.root)
            return self.total
        previous = signal.signal(signal.SIGUSR1, self._on_wake) if signals else None
        last_work = time.monotonic()
        try:
            with ThreadPoolExecutor(
                max_workers=self.settings.jobs, thread_name_prefix="pgvault-push"
            ) as pool:
                while True:
                    self._wake.clear()
                    ready = self.scan()
                    if ready:
                        self.push_batch(ready[: self.settings.batch_max], pool)
                        last_work = time.monotonic()
                        continue
                    idle = time.monotonic() - last_work
                    if (
                        idle >= self.settings.idle_exit
                        and self.spool.heartbeat_age() >= self.settings.idle_exit
                    ):
                        break
                    self._wake.wait(self.settings.rescan)
        finally:
            if signals:
                signal.signal(signal.SIGUSR1, previous)
            self.spool.release_lock()
        log.info(
            "pusher exits: %d stored, %d already archived, %d failed",
            len(self.total.pushed),
            len(self.total.already),
            len(self.total.failed),
        )
        return self.total

    def _on_wake(self, signum: int, frame: FrameType | None) -> None:
        self._wake.set()

    # ---- what to push -----------------------------------------------------------------------

    def scan(self) -> list[str]:
        """Names PostgreSQL marked .ready that need an upload now, in archive order."""
        try:
            entries = os.listdir(self.status_dir)
        except FileNotFoundError:
            raise InputError(
                f"{self.status_dir} does not exist: is this a pg_wal directory?"
            ) from None
        ready = {e[: -len(READY)] for e in entries if e.endswith(READY)}
        self._forget(ready)
        now = time.monotonic()
        wanted = []
        for name in ready:
            if not is_wal_name(name):
                continue
            try:
                identity = FileIdentity.of(os.stat(os.path.join(self.wal_dir, name)))
            except FileNotFoundError:
                continue
            if self._pushed.get(name) == identity:
                continue
            marker = self.spool.read_marker(name)
            if marker is not None and marker.identity == identity:
                self._pushed[name] = identity
                continue
            failed = self._failed_at.get(name)
            if (
                failed is not None
                and now - failed < self.settings.retry_after
                and self.spool.has_error(name)
            ):
                continue
            wanted.append(name)
        return sorted(wanted, key=archive_order)

    def _forget(self, ready: set[str]) -> None:
        """Drop state (and markers) of files PostgreSQL no longer wants archived."""
        for name in [n for n in self._pushed if n not in ready]:
            del self._pushed[name]
        for name in [n for n in self._failed_at if n not in ready]:
            del self._failed_at[name]
        for name in self.spool.markers():
            if name not in ready:
                self.spool.remove_marker(name)

    # ---- one batch --------------------------------------------------------------------------

    def push_batch(self, names: list[str], pool: ThreadPoolExecutor) -> BatchResult:
        """Upload `names` with `jobs` in flight, through the batch runner."""
        return self.batch_runner(names, lambda reporter: self._push(names, pool, reporter))

    def _push(self, names: list[str], pool: ThreadPoolExecutor, reporter: Reporter) -> BatchResult:
        started = time.monotonic()
        result = BatchResult()
        reporter.phase("pushing WAL")
        sizes = {}
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                sizes[name] = os.stat(os.path.join(self.wal_dir, name)).st_size
        reporter.set_totals(bytes_total=sum(sizes.values()), files_total=len(names))
        self._watch(reporter)
        try:
            listings = self._listings(names, pool)
        except Exception as exc:  # each waiting archive_command is told why
            failure = _failure(exc, self.spool)
            for name in names:
                identity = self._identity(name)
                result.failed[name] = self._failed(name, identity, failure)
            self.total.failed.update(result.failed)
            return result
        futures = {
            name: pool.submit(
                self._push_one, name, listings[self.archiver.layout.wal_dir(name)], reporter
            )
            for name in names
        }
        for name, pushed in futures.items():
            outcome = pushed.result()
            if outcome is None:
                result.skipped.append(name)
            elif outcome == "stored":
                result.pushed.append(name)
            elif outcome == "already":
                result.already.append(name)
            else:
                result.failed[name] = outcome
        result.seconds = time.monotonic() - started
        for target, source in (
            (self.total.pushed, result.pushed),
            (self.total.already, result.already),
            (self.total.skipped, result.skipped),
        ):
            target.extend(source)
        self.total.failed.update(result.failed)
        level = logging.WARNING if result.failed else logging.INFO
        reporter.log(
            f"batch of {len(names)}: {len(result.pushed)} stored, {len(result.already)} "
            f"already archived, {len(result.failed)} failed in {result.seconds:.2f}s",
            level,
        )
        reporter.phase("done")
        return result

    def _listings(self, names: list[str], pool: ThreadPoolExecutor) -> dict[str, list[ObjectInfo]]:
        """The batch's archive directories, listed once each for its duplicate checks, after
        the key file is read again (made, rotated or gone since the last batch)."""
        self.archiver.refresh_key()
        if self.secondary is not None:
            try:
                self.secondary.refresh_key()
            except Exception as exc:  # its uploads fail with the reason; it seals as it did
                log.debug("cannot read the secondary destination's key file: %s", exc)
        pending: dict[str, Future[list[ObjectInfo]]] = {}
        for name in names:
            directory = self.archiver.layout.wal_dir(name)
            if directory not in pending:
                pending[directory] = pool.submit(self.archiver.list_wal_dir, name)
        return {directory: future.result() for directory, future in pending.items()}

    def _watch(self, reporter: Reporter) -> None:
        """The batch's pause/cancel gate and byte meter on every store it writes to."""
        for archiver in (self.archiver, self.secondary):
            if archiver is not None:
                archiver.store.gate = reporter.checkpoint
                archiver.store.meter = reporter.transferred

    def _identity(self, name: str) -> FileIdentity | None:
        try:
            return FileIdentity.of(os.stat(os.path.join(self.wal_dir, name)))
        except FileNotFoundError:
            return None

    def _push_one(self, name: str, listing: list[ObjectInfo], reporter: Reporter) -> str | None:
        path = os.path.join(self.wal_dir, name)
        identity: FileIdentity | None = None
        try:
            identity = FileIdentity.of(os.stat(path))
            wal = read_wal_file(path)
            identity = wal.identity
            reporter.checkpoint()
            outcome = self.archiver.archive_file(wal, listing=listing, reporter=reporter)
            if self.secondary is not None:
                same_encryption(self.archiver, self.secondary)
                self.secondary.archive_file(wal, reporter=reporter)
        except FileNotFoundError:
            return None
        except PgvaultError as exc:
            if isinstance(exc, InputError) and not os.path.exists(path):
                return None  # archived and recycled meanwhile
            return self._failed(name, identity, exc)
        except Exception as exc:  # a bug must not kill the pusher silently
            return self._failed(name, identity, _failure(exc, self.spool))
        return self._acknowledge(name, identity, outcome)

    def _acknowledge(self, name: str, identity: FileIdentity, outcome: ArchiveResult) -> str:
        """Tell archive_command the file is stored (its marker); the outcome's word."""
        try:
            self.spool.write_marker(name, identity, outcome.key)
            self.spool.clear_error(name)
        except OSError as exc:  # stored, but archive_command cannot be told (disk full?)
            failure = LocalIOError(f"cannot write the marker of {name}: {exc.strerror}")
            return self._failed(name, identity, failure)
        self._failed_at.pop(name, None)
        self._pushed[name] = identity
        return "stored" if outcome.stored else "already"

    def _failed(self, name: str, identity: FileIdentity | None, exc: PgvaultError) -> str:
        message = str(exc)
        log.warning("could not archive %s: %s", name, message)
        if identity is not None:
            try:
                self.spool.write_error(
                    name, identity, int(exc.exit_code or ExitCode.OTHER), message
                )
            except OSError as error:  # archive_command will time out and PostgreSQL retry
                log.error("cannot write the error marker of %s: %s", name, error.strerror)
        self._failed_at[name] = time.monotonic()
        return message


def _failure(exc: Exception, spool: ArchiveSpool) -> PgvaultError:
    """What archive_command is told: the error `exc` stands for (a directory it cannot
    enter, named with its owner), else the unexpected error, whose stack goes to the log."""
    own = own_cause(exc)
    if own is not None:
        return own
    log.exception("unexpected error while pushing WAL")
    return spool.unexpected(exc)
