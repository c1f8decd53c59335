"""Connections to PostgreSQL, the facts a backup records, and the backup session.

Connections use barman-cloud's -h/-p/-U/-d semantics: -d is a database name or, when it
contains '=' or is a postgresql:// URI, a whole conninfo string (pgvault still applies
-h/-p/-U on top of it where barman-cloud would silently drop them). Every statement runs on
an asynchronous libpq connection polled in short steps, so a long wait (the start
checkpoint, the stop waiting for WAL archiving) stays cancellable between steps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg2
import psycopg2.extensions

from core.catalog.backup_info import Tablespace
from core.errors import Cancelled, PostgresError
from core.postgres import versions
from core.postgres.walnames import parse_lsn
from core.secrets import register_secret

log = logging.getLogger("pgvault.postgres")

MINIMUM_VERSION = 130000
POLL_STEP = 0.25


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "pgerror", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class ConnectionParams:
    """-h/-p/-U/-d as barman-cloud takes them."""

    host: str | None = None
    port: str | None = None
    user: str | None = None
    dbname: str = "postgres"

    @property
    def dbname_is_conninfo(self) -> bool:
        d = self.dbname
        return d == "" or "=" in d or d.startswith(("postgresql://", "postgres://"))

    def dsn(self, dbname: str | None = None, application_name: str | None = None) -> str:
        """A libpq conninfo string; `dbname` replaces the database (for inventories)."""
        base = self.dbname if self.dbname_is_conninfo else ""
        overrides: dict[str, str] = {}
        if self.host:
            overrides["host"] = self.host
        if self.port:
            overrides["port"] = str(self.port)
        if self.user:
            overrides["user"] = self.user
        if dbname is not None:
            overrides["dbname"] = dbname
        elif not self.dbname_is_conninfo:
            overrides["dbname"] = self.dbname
        if application_name:
            overrides["application_name"] = application_name
        try:
            dsn: str = psycopg2.extensions.make_dsn(base, **overrides)
            parsed = psycopg2.extensions.parse_dsn(dsn)
        except psycopg2.ProgrammingError as exc:
            raise PostgresError(f"invalid connection string: {_first_line(exc)}") from None
        register_secret(parsed.get("password"))
        return dsn


class Session:
    """One PostgreSQL connection; statements can be interrupted by a checkpoint callable."""

    def __init__(
        self,
        params: ConnectionParams,
        application_name: str = "pgvault",
        dbname: str | None = None,
        checkpoint: Callable[[], None] | None = None,
    ) -> None:
        register_secret(os.environ.get("PGPASSWORD"))
        self._checkpoint = checkpoint
        self._lock = threading.Lock()
        dsn = params.dsn(dbname, application_name)
        try:
            self._conn: Any = psycopg2.connect(dsn, async_=True)
            self._wait("connect")
        except psycopg2.Error as exc:
            raise PostgresError(f"cannot connect to PostgreSQL: {_first_line(exc)}") from None
        self.closed = False

    # ---- statements ---------------------------------------------------------------------------

    def query(
        self, sql: str, params: Sequence[Any] | None = None, what: str | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement (autocommit) and return its rows."""
        with self._lock:
            if self.closed:
                raise PostgresError("the PostgreSQL session is closed")
            cursor = self._conn.cursor()
            try:
                cursor.execute(sql, params)
                self._wait(what or sql.split()[0])
                rows: list[tuple[Any, ...]] = cursor.fetchall() if cursor.description else []
                return rows
            except psycopg2.Error as exc:
                if isinstance(exc, psycopg2.OperationalError) and self._conn.closed:
                    self.closed = True
                raise PostgresError(f"{what or 'query'} failed: {_first_line(exc)}") from None
            finally:
                with contextlib.suppress(psycopg2.Error):
                    cursor.close()

    def one(self, sql: str, params: Sequence[Any] | None = None, what: str | None = None) -> Any:
        rows = self.query(sql, params, what)
        return rows[0][0] if rows else None

    def close(self) -> None:
        with contextlib.suppress(psycopg2.Error):
            self._conn.close()
        self.closed = True

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait(self, what: str) -> None:
        """Poll the async connection; between steps run the checkpoint (cancel on raise)."""
        conn = self._conn
        while True:
            state = conn.poll()
            if state == psycopg2.extensions.POLL_OK:
                return
            if state == psycopg2.extensions.POLL_READ:
                _wait_for(conn.fileno(), select.POLLIN)
            elif state == psycopg2.extensions.POLL_WRITE:
                _wait_for(conn.fileno(), select.POLLOUT)
            if self._checkpoint is not None:
                try:
                    self._checkpoint()
                except Cancelled:
                    self._cancel(what)
                    raise

    def _cancel(self, what: str) -> None:
        """Cancel the running statement and close: PostgreSQL aborts a backup on close."""
        log.info("cancelling %s on PostgreSQL", what)
        with contextlib.suppress(psycopg2.Error):
            self._conn.cancel()
        self.close()


# ---- server facts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerFacts:
    """What the server says about itself, read once before the backup starts."""

    version_num: int
    version_text: str
    data_directory: str
    wal_segment_size: int
    block_size: int
    data_checksums: str | None
    summarize_wal: str | None
    system_identifier: str
    catalog_version: int
    in_recovery: bool
    archive_mode: str
    tablespaces: tuple[Tablespace, ...]
    config_file: str | None
    hba_file: str | None
    ident_file: str | None
    included_files: tuple[str, ...] = ()
    cluster_size: int | None = None
    stats_temp_directory: str | None = None

    @property
    def major(self) -> int:
        return versions.major(self.version_num)

    @property
    def tablespace_version_dir(self) -> str:
        """The directory PostgreSQL keeps inside each tablespace, e.g. PG_15_202209061."""
        return f"PG_{self.major}_{self.catalog_version}"


def read_facts(session: Session) -> ServerFacts:
    """Collect the server facts barman-cloud records in backup.info, and a few more."""
    (
        version_num,
        version_text,
        data_directory,
        block_size,
        data_checksums,
        in_recovery,
        archive_mode,
    ) = session.query(
        "SELECT current_setting('server_version_num')::int, current_setting('server_version'),"
        " current_setting('data_directory'), current_setting('block_size')::int,"
        " current_setting('data_checksums', true), pg_is_in_recovery(),"
        " current_setting('archive_mode')",
        what="reading server settings",
    )[0]
    if version_num < MINIMUM_VERSION:
        raise PostgresError(
            f"PostgreSQL {version_text} is not supported: pgvault backs up PostgreSQL 13 or later"
        )
    system_identifier, catalog_version = session.query(
        "SELECT system_identifier::text, catalog_version_no FROM pg_control_system()",
        what="reading pg_control_system()",
    )[0]
    files = _configuration_files(session)
    return ServerFacts(
        version_num=version_num,
        version_text=version_text,
        data_directory=data_directory,
        wal_segment_size=_wal_segment_size(session),
        block_size=block_size,
        data_checksums=data_checksums,
        summarize_wal=(
            session.one("SELECT current_setting('summarize_wal')")
            if version_num >= versions.WAL_SUMMARIES
            else None
        ),
        system_identifier=str(system_identifier),
        catalog_version=int(catalog_version),
        in_recovery=bool(in_recovery),
        archive_mode=archive_mode,
        tablespaces=_tablespaces(session),
        config_file=files.get("config_file"),
        hba_file=files.get("hba_file"),
        ident_file=files.get("ident_file"),
        included_files=_included_files(session),
        cluster_size=_cluster_size(session),
        stats_temp_directory=(
            session.one("SELECT current_setting('stats_temp_directory')")
            if version_num < versions.BACKUP_FUNCTIONS_RENAMED
            else None
        ),
    )


def _wal_segment_size(session: Session) -> int:
    return int(
        session.one(
            "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'",
            what="reading wal_segment_size",
        )
    )


def _tablespaces(session: Session) -> tuple[Tablespace, ...]:
    return tuple(
        Tablespace(name, int(oid), location)
        for name, oid, location in session.query(
            "SELECT spcname, oid, pg_tablespace_location(oid) FROM pg_tablespace"
            " WHERE pg_tablespace_location(oid) <> '' ORDER BY oid",
            what="listing tablespaces",
        )
    )


def _configuration_files(session: Session) -> dict[str, str]:
    return dict(
        session.query(
            "SELECT name, setting FROM pg_settings"
            " WHERE name IN ('config_file', 'hba_file', 'ident_file')",
            what="reading configuration file locations",
        )
    )


def _included_files(session: Session) -> tuple[str, ...]:
    return tuple(
        row[0]
        for row in session.query(
            "SELECT DISTINCT sourcefile FROM pg_settings WHERE sourcefile IS NOT NULL"
            " AND sourcefile NOT IN (SELECT setting FROM pg_settings WHERE name = 'config_file')"
            " ORDER BY 1",
            what="reading included configuration files",
        )
    )


def _cluster_size(session: Session) -> int | None:
    """The size of every tablespace together; None where it cannot be read."""
    try:
        size = session.one(
            "SELECT sum(pg_tablespace_size(oid))::bigint FROM pg_tablespace",
            what="measuring the cluster",
        )
    except PostgresError as exc:
        log.info("cluster size unknown: %s", exc)
        return None
    return int(size) if size is not None else None


# ---- the backup session -------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupStart:
    lsn: int
    timeline: int
    time: datetime


@dataclass(frozen=True)
class BackupStop:
    lsn: int
    timeline: int
    time: datetime
    labelfile: str
    spcmapfile: str


@dataclass
class BackupSession:
    """A non-exclusive backup on one session: start, keepalive, stop; close aborts it."""

    session: Session
    version_num: int
    keepalive_interval: float = 60.0
    in_progress: bool = False
    _lost: BaseException | None = None
    _stop_keepalive: threading.Event = field(default_factory=threading.Event)
    _keepalive: threading.Thread | None = None

    def start(self, label: str, fast: bool) -> BackupStart:
        # The session must outlive the copy however long it is idle, and neither a slow
        # start checkpoint nor the wait for archiving may hit a configured statement_timeout.
        self.session.query("SET statement_timeout = 0")
        if self.version_num >= versions.IDLE_SESSION_TIMEOUT:
            self.session.query("SET idle_session_timeout = 0")
        function = (
            "pg_backup_start(%s, %s)"
            if self.version_num >= versions.BACKUP_FUNCTIONS_RENAMED
            else "pg_start_backup(%s, %s, false)"
        )
        # The label is a bound parameter; `function` is one of two fixed names.
        sql = "SELECT location::text, (SELECT timeline_id FROM pg_control_checkpoint()), now()"
        lsn, timeline, started = self.session.query(
            f"{sql} FROM {function} AS location",
            (label[:1024], fast),
            what="starting the backup",
        )[0]
        self.in_progress = True
        self._start_keepalive()
        return BackupStart(lsn=parse_lsn(lsn), timeline=int(timeline), time=started)

    def stop(self, wait_for_archive: bool = True) -> BackupStop:
        """Stop the backup; with wait_for_archive, PostgreSQL returns once the WAL it needs
        is archived (checking every second: callers that can read pg_wal wait themselves)."""
        self._end_keepalive()
        self.raise_if_lost()
        wait = "true" if wait_for_archive else "false"
        if self.version_num >= versions.BACKUP_FUNCTIONS_RENAMED:
            function = f"pg_backup_stop({wait})"
        else:
            function = f"pg_stop_backup(false, {wait})"
        # `function` is one of two fixed names with a literal true/false.
        sql = (
            "SELECT s.lsn::text, s.labelfile, s.spcmapfile,"
            " (SELECT CASE WHEN pg_is_in_recovery() THEN min_recovery_end_timeline"
            "  ELSE timeline_id END FROM pg_control_checkpoint(), pg_control_recovery()),"
            " now()"
        )
        lsn, labelfile, spcmapfile, timeline, stopped = self.session.query(
            f"{sql} FROM {function} AS s",
            what="stopping the backup (waiting for WAL archiving)",
        )[0]
        self.in_progress = False
        return BackupStop(
            lsn=parse_lsn(lsn),
            timeline=int(timeline),
            time=stopped,
            labelfile=labelfile,
            spcmapfile=spcmapfile or "",
        )

    def switch_wal(self) -> None:
        self.session.query("SELECT pg_switch_wal()", what="switching WAL")

    def restore_point(self, name: str) -> None:
        self.session.query(
            "SELECT pg_create_restore_point(%s)", (name,), what="creating a restore point"
        )

    def raise_if_lost(self) -> None:
        """Fail once the keepalive found the session dead (PostgreSQL aborted the backup)."""
        if self._lost is not None:
            raise PostgresError(
                f"the backup session to PostgreSQL was lost ({_first_line(self._lost)}); "
                "PostgreSQL aborted the backup"
            )

    def close(self) -> None:
        """End the session; a backup still in progress is aborted by PostgreSQL."""
        self._end_keepalive()
        self.session.close()
        self.in_progress = False

    def _start_keepalive(self) -> None:
        if self.keepalive_interval <= 0:
            return
        self._stop_keepalive.clear()
        self._keepalive = threading.Thread(
            target=self._keepalive_loop, name="pgvault-keepalive", daemon=True
        )
        self._keepalive.start()

    def _end_keepalive(self) -> None:
        self._stop_keepalive.set()
        if self._keepalive is not None:
            self._keepalive.join()
            self._keepalive = None

    def _keepalive_loop(self) -> None:
        while not self._stop_keepalive.wait(self.keepalive_interval):
            try:
                self.session.query("SELECT 1", what="keepalive")
            except PostgresError as exc:
                log.warning("backup session keepalive failed: %s", exc)
                self._lost = exc
                return


def _wait_for(fd: int, events: int) -> None:
    """Up to POLL_STEP for `fd` to be ready: poll(2), not select(2), which refuses a
    descriptor numbered 1024 or more (a long-lived console or agent may hold that many)."""
    poller = select.poll()
    poller.register(fd, events)
    poller.poll(POLL_STEP * 1000)
