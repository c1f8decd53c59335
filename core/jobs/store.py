"""The job store: one SQLite database in WAL mode under the state directory.

Many processes use it at once: the process running each job (one batched write every half
second), `pgvault --batch jobs ...` commands, and consoles polling 2-4 times a second.
WAL mode lets readers run beside the writer; every write is one short `BEGIN IMMEDIATE`
transaction (so two writers never deadlock upgrading a read lock) and `busy_timeout`
makes a writer wait its turn rather than fail.

Every write bumps a store-wide change counter and stamps the rows it touched with it
(`rev`), so a console asks "what changed since rev N" with one indexed query.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import OperationFailed
from core.jobs.model import (
    ACTIVE_STATES,
    FINAL_STATES,
    IllegalTransition,
    Job,
    JobFilter,
    JobNotFound,
    JobState,
    LogLine,
    check_transition,
)
from core.jobs.results import JobDetails, ResultRecord
from core.jobs.schema import SCHEMA, SCHEMA_VERSION, SELECT_JOBS, result_json, row_to_job, to_json
from core.paths import adopt_fd, adopt_path, state_dir
from core.progress import MAX_SAMPLES, ProgressSnapshot, RateSample
from core.secrets import redact

log = logging.getLogger("pgvault.jobs")

DB_NAME = "jobs.db"
BUSY_TIMEOUT_MS = 30_000
MAX_LOG_LINES = 2000  # per job; older lines are dropped
SAMPLE_HORIZON = float(MAX_SAMPLES)  # seconds of 1 s samples kept per job (one hour)
RETENTION = 14 * 86400.0  # finished jobs older than this are pruned (CockroachDB's default)


@dataclass(frozen=True)
class Changes:
    """What a poll returns: the store's current rev and the jobs changed after the asked rev."""

    rev: int
    jobs: list[Job]


@dataclass(frozen=True)
class ProcessInfo:
    """Which process runs a job: pid, its start time (to tell a reused pid) and the host."""

    pid: int
    host: str
    start: int | None


class JobStore:
    """A connection to the job store; thread-safe (one lock around one connection).

    Open one per thread that writes often (the job reporter has its own) to keep the lock
    uncontended; any number of processes may open the same database.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self._make_directory()
            # Created owner-only before SQLite opens it: SQLite gives its -wal and -shm files
            # the database's permissions and owner. (Not through umask: it is process-wide.)
            # Only when it is missing: closing a descriptor of a database this process has
            # open would drop SQLite's POSIX locks on it.
            if not self.path.exists():
                with contextlib.suppress(FileExistsError):
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                    try:
                        adopt_fd(fd, self.path.parent)
                    finally:
                        os.close(fd)
            self._conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        except (OSError, sqlite3.Error) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise OperationFailed(f"cannot open the job store {self.path}: {reason}") from None
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            # WAL + NORMAL: a commit survives a crash of any process; only an OS crash may
            # lose the last half second of progress, which the next flush rewrites anyway.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise OperationFailed(f"cannot open the job store {self.path}: {exc}") from None
        # sqlite3's connection sits in a reference cycle (its statement cache), so one merely
        # dropped kept its descriptors until a full garbage collection: a store dropped
        # unclosed closes it when it goes (the store itself is in no cycle).
        self._closer = weakref.finalize(self, self._conn.close)

    def _make_directory(self) -> None:
        """The state directory, made (owner-only) with its parent's owner when missing."""
        missing = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for made in reversed(missing):
            adopt_path(made)

    @classmethod
    def open(cls, explicit_state_dir: str | None = None) -> JobStore:
        """The store under --state-dir, $PGVAULT_STATE_DIR or $XDG_STATE_HOME/pgvault."""
        return cls(state_dir(explicit_state_dir) / DB_NAME)

    def close(self) -> None:
        with self._lock:
            self._closer()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing --------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._lock:
            if self._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                return  # the common case needs no write lock
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise OperationFailed(
                    f"the job store {self.path} was written by a newer pgvault "
                    f"(schema {version}, this one knows {SCHEMA_VERSION})"
                )
            if version < SCHEMA_VERSION:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, taken with the write lock up front."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _next_rev(conn: sqlite3.Connection) -> int:
        row = conn.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'rev' RETURNING value"
        ).fetchone()
        return int(row[0])

    def _read(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(query, params).fetchall()

    @staticmethod
    def _get(conn: sqlite3.Connection, job_id: int) -> Job:
        row = conn.execute(f"{SELECT_JOBS} WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"no job {job_id} in the job store")
        return row_to_job(row)

    # ---- creating and changing jobs --------------------------------------------------------------

    def create(  # noqa: PLR0913 - keyword-only, one per column a new job row sets
        self,
        kind: str,
        *,
        state: JobState = JobState.PENDING,
        description: str = "",
        server: str | None = None,
        destination: str | None = None,
        options: dict[str, Any] | None = None,
        entry: str | None = None,
        detached: bool = False,
        process: ProcessInfo | None = None,
        resumed_from: int | None = None,
    ) -> Job:
        """Record a new job (pending for a detached one, running for a foreground one)."""
        if state not in (JobState.PENDING, JobState.RUNNING):
            raise ValueError(f"a job starts pending or running, not {state}")
        now = time.time()
        self.prune(now - RETENTION)
        with self._write() as conn:
            rev = self._next_rev(conn)
            row = conn.execute(
                "INSERT INTO jobs (kind, entry, state, description, server, destination, "
                "options, created, started, heartbeat, pid, pid_start, host, detached, "
                "resumed_from, rev) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING id",
                (
                    kind,
                    entry,
                    state.value,
                    redact(description),
                    server,
                    redact(destination) if destination else None,
                    to_json(options or {}),
                    now,
                    now if state is JobState.RUNNING else None,
                    now,
                    process.pid if process else None,
                    process.start if process else None,
                    process.host if process else None,
                    int(detached),
                    resumed_from,
                    rev,
                ),
            ).fetchone()
            return self._get(conn, int(row[0]))

    def set_process(self, job_id: int, process: ProcessInfo) -> None:
        """Record which process runs the job (the spawner does it before the child starts)."""
        with self._write() as conn:
            rev = self._next_rev(conn)
            conn.execute(
                "UPDATE jobs SET pid = ?, pid_start = ?, host = ?, heartbeat = ?, rev = ? "
                "WHERE id = ?",
                (process.pid, process.start, process.host, time.time(), rev, job_id),
            )

    def claim(self, job_id: int, process: ProcessInfo) -> Job:
        """The worker takes a pending job: running (or paused / cancelled if so requested)."""
        with self._write() as conn:
            job = self._get(conn, job_id)
            target = {
                JobState.PENDING: JobState.RUNNING,
                JobState.PAUSE_REQUESTED: JobState.PAUSED,
                JobState.CANCEL_REQUESTED: JobState.CANCELLED,
            }.get(job.state)
            if target is None:
                raise IllegalTransition(f"cannot start job {job_id}: it is {job.state.value}")
            now = time.time()
            rev = self._next_rev(conn)
            conn.execute(
                "UPDATE jobs SET state = ?, started = ?, finished = ?, heartbeat = ?, pid = ?, "
                "pid_start = ?, host = ?, rev = ? WHERE id = ?",
                (
                    target.value,
                    now,
                    now if target.final else None,
                    now,
                    process.pid,
                    process.start,
                    process.host,
                    rev,
                    job_id,
                ),
            )
            return self._get(conn, job_id)

    def transition(
        self,
        job_id: int,
        target: JobState,
        *,
        verb: str | None = None,
        error: str | None = None,
        result: ResultRecord | None = None,
        only_from: frozenset[JobState] | None = None,
    ) -> Job:
        """Move a job to `target` if the rules allow it (and it is in `only_from`, if given).

        `result`, when given, replaces the recorded one. Raises IllegalTransition with a
        one-line message otherwise; a job already in `target` is returned unchanged.
        """
        with self._write() as conn:
            job = self._get(conn, job_id)
            if job.state is target:
                return job
            if only_from is not None and job.state not in only_from:
                raise IllegalTransition(
                    f"cannot {verb or target.value} job {job_id}: it is {job.state.value}"
                )
            check_transition(job_id, job.state, target, verb or f"mark as {target.value}")
            now = time.time()
            rev = self._next_rev(conn)
            conn.execute(
                "UPDATE jobs SET state = ?, finished = COALESCE(finished, ?), "
                "error = COALESCE(?, error), result = COALESCE(?, result), rev = ?, "
                "rate = CASE WHEN ? THEN 0 ELSE rate END, "
                "eta = CASE WHEN ? THEN NULL ELSE eta END WHERE id = ?",
                (
                    target.value,
                    now if target.final else None,
                    redact(error) if error is not None else None,
                    result_json(result) if result is not None else None,
                    rev,
                    int(target.final),
                    int(target.final),
                    job_id,
                ),
            )
            return self._get(conn, job_id)

    def mark_dead(self, job_id: int, stale_before: float, error: str) -> Job | None:
        """Fail an active job whose heartbeat is still older than `stale_before`.

        The condition is re-checked inside the transaction, so a job that wrote a heartbeat
        since the caller looked is left alone (None is returned).
        """
        with self._write() as conn:
            job = self._get(conn, job_id)
            last = job.heartbeat or job.created
            if job.final or last >= stale_before:
                return None
            rev = self._next_rev(conn)
            now = time.time()
            conn.execute(
                "UPDATE jobs SET state = ?, finished = ?, error = ?, rate = 0, eta = NULL, "
                "rev = ? WHERE id = ?",
                (JobState.FAILED.value, now, redact(error), rev, job_id),
            )
            self._append_log(conn, job_id, [(now, logging.ERROR, error)])
            return self._get(conn, job_id)

    # The operator's verbs. Each returns (job after, whether anything changed).

    def request_pause(self, job_id: int) -> tuple[Job, bool]:
        return self._request(
            job_id,
            JobState.PAUSE_REQUESTED,
            "pause",
            done={JobState.PAUSE_REQUESTED, JobState.PAUSED},
        )

    def request_resume(self, job_id: int) -> tuple[Job, bool]:
        """Resume a paused (or pause-requested) job; running jobs are left as they are."""
        return self._request(
            job_id,
            JobState.RUNNING,
            "resume",
            done={JobState.RUNNING, JobState.PENDING},
            only_from={JobState.PAUSED, JobState.PAUSE_REQUESTED},
        )

    def request_cancel(self, job_id: int) -> tuple[Job, bool]:
        return self._request(
            job_id, JobState.CANCEL_REQUESTED, "cancel", done={JobState.CANCEL_REQUESTED}
        )

    def _request(
        self,
        job_id: int,
        target: JobState,
        verb: str,
        done: set[JobState],
        only_from: set[JobState] | None = None,
    ) -> tuple[Job, bool]:
        with self._write() as conn:
            job = self._get(conn, job_id)
            if job.state in done:
                return job, False
            if only_from is not None and job.state not in only_from:
                raise IllegalTransition(f"cannot {verb} job {job_id}: it is {job.state.value}")
            check_transition(job_id, job.state, target, verb)
            rev = self._next_rev(conn)
            conn.execute(
                "UPDATE jobs SET state = ?, rev = ? WHERE id = ?", (target.value, rev, job_id)
            )
            self._append_log(conn, job_id, [(time.time(), logging.INFO, f"{verb} requested")])
            return self._get(conn, job_id), True

    def flush(
        self,
        job_id: int,
        snapshot: ProgressSnapshot,
        samples: Sequence[RateSample],
        lines: Sequence[tuple[float, int, str]],
        decide: Callable[[JobState], JobState | None] | None = None,
        details: JobDetails | None = None,
    ) -> JobState:
        """The running job's batched write: progress, heartbeat, new samples and log lines.

        `decide` sees the state the operator left (e.g. pause-requested), applies it to the
        operation and returns the state to acknowledge (e.g. paused), all in one transaction.
        `details` (facts the operation recorded, such as a backup ID) replace the job's
        result while it runs. Returns the job's state after the flush.
        """
        now = time.time()
        with self._write() as conn:
            row = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(f"no job {job_id} in the job store")
            state = JobState(row[0])
            acknowledged = decide(state) if decide is not None else None
            if acknowledged is not None and acknowledged is not state:
                check_transition(job_id, state, acknowledged, f"mark as {acknowledged.value}")
                state = acknowledged
            # A paused job moves nothing: its rate is 0 now, not the decaying average.
            idle = state.final or state is JobState.PAUSED
            rev = self._next_rev(conn)
            conn.execute(
                "UPDATE jobs SET state = ?, phase = ?, bytes_done = ?, bytes_total = ?, "
                "files_done = ?, files_total = ?, rate = ?, eta = ?, heartbeat = ?, rev = ? "
                "WHERE id = ?",
                (
                    state.value,
                    snapshot.phase,
                    snapshot.bytes_done,
                    snapshot.bytes_total,
                    snapshot.files_done,
                    snapshot.files_total,
                    0.0 if idle else snapshot.rate,
                    None if idle else snapshot.eta,
                    now,
                    rev,
                    job_id,
                ),
            )
            if details is not None:
                conn.execute(
                    "UPDATE jobs SET result = ? WHERE id = ?",
                    (result_json(ResultRecord(details)), job_id),
                )
            self._add_samples(conn, job_id, samples)
            if lines:
                self._append_log(conn, job_id, lines)
        return state

    @staticmethod
    def _add_samples(conn: sqlite3.Connection, job_id: int, samples: Sequence[RateSample]) -> None:
        """New 1 s rate samples; those older than SAMPLE_HORIZON before the last go."""
        if not samples:
            return
        conn.executemany(
            "INSERT OR REPLACE INTO job_samples (job_id, at, rate) VALUES (?, ?, ?)",
            [(job_id, s.at, s.rate) for s in samples],
        )
        conn.execute(
            "DELETE FROM job_samples WHERE job_id = ? AND at <= ?",
            (job_id, samples[-1].at - SAMPLE_HORIZON),
        )

    def append_log(self, job_id: int, lines: Sequence[tuple[float, int, str]]) -> None:
        with self._write() as conn:
            self._append_log(conn, job_id, lines)

    @staticmethod
    def _append_log(
        conn: sqlite3.Connection, job_id: int, lines: Sequence[tuple[float, int, str]]
    ) -> None:
        conn.executemany(
            "INSERT INTO job_log (job_id, at, level, message) VALUES (?, ?, ?, ?)",
            [(job_id, at, level, redact(message)) for at, level, message in lines],
        )
        conn.execute(
            "DELETE FROM job_log WHERE job_id = ? AND seq <= (SELECT seq FROM job_log "
            "WHERE job_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            (job_id, job_id, MAX_LOG_LINES),
        )

    def prune(
        self, finished_before: float, kind: str | None = None, state: JobState | None = None
    ) -> int:
        """Delete jobs that finished before the given time, with their logs and samples."""
        query = "SELECT id FROM jobs WHERE finished IS NOT NULL AND finished < ?"
        params: list[Any] = [finished_before]
        if kind is not None:
            query += " AND kind = ?"
            params.append(kind)
        if state is not None:
            query += " AND state = ?"
            params.append(state.value)
        with self._write() as conn:
            ids = [r[0] for r in conn.execute(query, params)]
            for job_id in ids:
                conn.execute("DELETE FROM job_log WHERE job_id = ?", (job_id,))
                conn.execute("DELETE FROM job_samples WHERE job_id = ?", (job_id,))
                conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            return len(ids)

    # ---- readers (what `jobs` commands and the console use) --------------------------------------

    def get(self, job_id: int) -> Job:
        with self._lock:
            return self._get(self._conn, job_id)

    def list_jobs(self, where: JobFilter | None = None) -> list[Job]:
        """Jobs matching the filter (all by default), newest first."""
        where = where or JobFilter()
        clauses: list[str] = []
        params: list[Any] = []
        for column, values in (
            ("state", [s.value for s in where.states]),
            ("kind", list(where.kinds)),
            ("server", list(where.servers)),
        ):
            if values:
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                params += values
        if where.since is not None:
            clauses.append("created >= ?")
            params.append(where.since)
        query = SELECT_JOBS
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY id DESC"
        if where.limit:
            query += " LIMIT ?"
            params.append(where.limit)
        return [row_to_job(r) for r in self._read(query, params)]

    def active_jobs(self) -> list[Job]:
        return self.list_jobs(JobFilter(states=tuple(ACTIVE_STATES)))

    def rev(self) -> int:
        """The store's change counter: it grows with every write."""
        return int(self._read("SELECT value FROM meta WHERE key = 'rev'")[0][0])

    def changed_since(self, rev: int) -> Changes:
        """Jobs whose row changed after `rev` (all jobs for rev 0), and the current rev.

        A console keeps the returned rev and asks again; an idle store answers with an
        empty list from one index lookup.
        """
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                current = int(
                    self._conn.execute("SELECT value FROM meta WHERE key = 'rev'").fetchone()[0]
                )
                rows = self._conn.execute(
                    f"{SELECT_JOBS} WHERE rev > ? ORDER BY id DESC", (rev,)
                ).fetchall()
            finally:
                self._conn.execute("COMMIT")
        return Changes(current, [row_to_job(r) for r in rows])

    def log_tail(self, job_id: int, limit: int = 100, after_seq: int = 0) -> list[LogLine]:
        """The last `limit` log lines (with seq > after_seq), oldest first."""
        rows = self._read(
            "SELECT seq, job_id, at, level, message FROM job_log WHERE job_id = ? AND seq > ? "
            "ORDER BY seq DESC LIMIT ?",
            (job_id, after_seq, limit if limit > 0 else -1),
        )
        return [LogLine(*r) for r in reversed(rows)]

    def samples(self, job_id: int, since: float = 0.0) -> list[RateSample]:
        """The job's 1 s rate samples after `since` (Unix seconds), oldest first."""
        rows = self._read(
            "SELECT at, rate FROM job_samples WHERE job_id = ? AND at > ? ORDER BY at",
            (job_id, since),
        )
        return [RateSample(at=at, rate=rate) for at, rate in rows]

    def aggregate_samples(self, since: float = 0.0) -> list[RateSample]:
        """Bytes per second summed over every job, per whole second after `since`."""
        rows = self._read(
            "SELECT CAST(at AS INTEGER) AS second, SUM(rate) FROM job_samples WHERE at > ? "
            "GROUP BY second ORDER BY second",
            (since,),
        )
        return [RateSample(at=float(second), rate=rate) for second, rate in rows]

    def entry(self, job_id: int) -> str | None:
        """The import path of the job's kind ('module:attribute'), for a worker process."""
        rows = self._read("SELECT entry FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise JobNotFound(f"no job {job_id} in the job store")
        return rows[0][0] if rows[0][0] else None

    def process_of(self, job_id: int) -> ProcessInfo | None:
        rows = self._read("SELECT pid, host, pid_start FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise JobNotFound(f"no job {job_id} in the job store")
        pid, host, start = rows[0]
        return ProcessInfo(pid, host, start) if pid else None


__all__ = ["FINAL_STATES", "Changes", "JobStore", "ProcessInfo"]
