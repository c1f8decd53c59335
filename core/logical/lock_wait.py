"""Which lock pg_dump or pg_restore waits for, and who holds it (pg_stat_activity, pg_locks).

pg_dump takes ACCESS SHARE on every table it dumps before it reads any: a session holding
ACCESS EXCLUSIVE (ALTER TABLE, VACUUM FULL, LOCK TABLE in an open transaction) makes it
wait without end and without a word, the job showing "dump shop" for as long as that
session lives. pg_restore --clean drops the tables it replaces, which waits for every
session reading them. The watcher names the table and the sessions that block it; it shows
no query text (a blocker's statement may hold a secret).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from core.errors import PostgresError
from core.postgres.connection import ConnectionParams, Session
from core.progress import Reporter

log = logging.getLogger("pgvault.logical")

FIRST_LOOK = 3.0  # seconds after pg_dump started: a lock taken at once is not worth a query
LOOK_EVERY = 5.0

_WAITING = """
SELECT l.relation::regclass::text, pg_blocking_pids(a.pid)
FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
WHERE a.application_name = %s AND l.relation IS NOT NULL
ORDER BY a.pid LIMIT 1
"""
_BLOCKERS = """
SELECT pid, usename, application_name, state, extract(epoch FROM now() - xact_start)
FROM pg_stat_activity WHERE pid = ANY(%s) ORDER BY pid
"""


@dataclass(frozen=True)
class Blocker:
    pid: int
    user: str | None
    application: str | None
    state: str | None
    in_transaction: float | None  # seconds since its transaction began

    def describe(self) -> str:
        facts = [f"user {self.user}" if self.user else None]
        facts.append(f"application {self.application!r}" if self.application else None)
        facts.append(self.state)
        if self.in_transaction is not None:
            facts.append(f"in a transaction for {self.in_transaction:.0f} s")
        return f"pid {self.pid} ({', '.join(f for f in facts if f)})"


@dataclass(frozen=True)
class LockWait:
    """A tool waiting for a lock on `relation`, which `blockers` hold or wait before it."""

    relation: str
    blockers: tuple[Blocker, ...]

    def describe(self, tool: str) -> str:
        held = "; ".join(b.describe() for b in self.blockers) or "a session that just ended"
        return (
            f"{tool} waits for a lock on {self.relation}, held by {held}: it goes on once "
            "that transaction ends (pg_terminate_backend ends it, or cancel this job)"
        )


def lock_wait(session: Session, application_name: str) -> LockWait | None:
    """What the tool (its sessions carry `application_name`) waits for now, if anything."""
    rows = session.query(_WAITING, (application_name,), what="reading pg_locks")
    if not rows:
        return None
    relation, blocking = rows[0]
    blockers: tuple[Blocker, ...] = ()
    if blocking:
        blockers = tuple(
            Blocker(int(pid), user, app or None, state, None if age is None else float(age))
            for pid, user, app, state, age in session.query(
                _BLOCKERS, (list(blocking),), what="reading pg_stat_activity"
            )
        )
    return LockWait(str(relation), blockers)


class LockWatcher:
    """Looks, while `tool` runs, whether it waits for a lock; says so in the log and in the
    phase, and when it got it. Never fails the job: a look that fails ends the looking.
    The tool's sessions are found by their `application_name` in `database`."""

    def __init__(
        self,
        tool: str,
        connection: ConnectionParams,
        database: str | None,
        application_name: str,
        reporter: Reporter,
    ) -> None:
        self._tool = tool
        self._connection, self._database = connection, database
        self._application_name = application_name
        self._reporter = reporter
        self._session: Session | None = None
        self._next = time.monotonic() + FIRST_LOOK
        self._waiting: LockWait | None = None
        self._since = 0.0
        self._done = False
        self._lock = threading.Lock()

    def look(self, phase: str) -> None:
        """Called often (from the tool's watch loop); queries only every LOOK_EVERY seconds."""
        with self._lock:
            now = time.monotonic()
            if self._done or now < self._next:
                return
            self._next = now + LOOK_EVERY
            try:
                found = lock_wait(self._open(), self._application_name)
            except PostgresError as exc:
                self._done = True
                log.debug("not watching %s's locks: %s", self._tool, exc)
                self._close()
                return
            seen, self._waiting = self._waiting, found
            if found is not None and (seen is None or seen.relation != found.relation):
                self._since = now
                self._reporter.phase(f"{phase}: waiting for a lock on {found.relation}")
                self._reporter.log(found.describe(self._tool), logging.WARNING)
            elif found is None and seen is not None:
                self._reporter.phase(phase)
                self._got(seen, now)

    def finished(self) -> None:
        """The tool has finished: a lock it was seen waiting for, it got. No more looks."""
        with self._lock:
            self._done = True
            if self._waiting is not None:
                self._got(self._waiting, time.monotonic())
                self._waiting = None

    def close(self) -> None:
        with self._lock:
            self._done = True
            self._close()

    def _got(self, waited_for: LockWait, now: float) -> None:
        self._reporter.log(
            f"{self._tool} got its lock on {waited_for.relation} after {now - self._since:.0f} s"
        )

    def _open(self) -> Session:
        if self._session is None:
            self._session = Session(self._connection, "pgvault lock watch", dbname=self._database)
            self._session.query("SET statement_timeout = 5000", what="setting statement_timeout")
        return self._session

    def _close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
