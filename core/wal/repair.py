"""Gap repair: archive again the missing segments the server still holds in its pg_wal.

    run_repair(RepairRequest(...), reporter) -> RepairResult

The gaps come from core.wal.gaps. Each missing segment is read from the server's pg_wal:
a local data directory (`pgdata`), or the one a connection names (`SHOW data_directory`,
read directly when this host can, else through `pg_read_binary_file`, which needs
superuser or pg_read_server_files). It is checked and stored by WalArchiver, the one
WAL upload wal-archive uses (naming, compression, encryption, never overwriting), with the
compression of the newest archived segment. What cannot be found stays a gap: the result
lists it as a lost range, with the backups it cuts.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from core.catalog.layout import ServerLayout
from core.catalog.reader import Catalog
from core.errors import InputError
from core.postgres.connection import ConnectionParams, Session
from core.postgres.walnames import DEFAULT_SEGMENT_SIZE, is_segment
from core.progress import Reporter
from core.secrets import without_password
from core.storage import ObjectStore, StoreConfig, open_store
from core.urls import Location
from core.wal.archive import ArchiveSettings, WalArchiver, WalFile, read_wal_file, resolve_level
from core.wal.check import archived_wals, check_backups, read_histories
from core.wal.errors import WalRejected
from core.wal.gaps import WalGap, archive_gaps

log = logging.getLogger("pgvault.wal.repair")


@dataclass(frozen=True)
class RepairRequest:
    """Which archive to repair, and where the server's pg_wal is read from."""

    location: Location
    server: str
    #: a local data directory whose pg_wal holds the segments
    pgdata: str | None = None
    #: or a connection to the server (its data directory, or pg_read_binary_file)
    connection: ConnectionParams | None = None
    store_config: StoreConfig = field(default_factory=StoreConfig)


@dataclass(frozen=True)
class GapReport:
    """The archive's gaps and how far recovery goes, before or after a repair."""

    gaps: tuple[WalGap, ...]
    segment_size: int
    wal_files: int


@dataclass(frozen=True)
class RepairResult:
    server: str
    before: GapReport
    #: the segments archived again
    repaired: tuple[str, ...]
    #: what is still missing: segments the server no longer holds either
    lost: GapReport
    #: where the segments were read (a directory, or the server through SQL)
    source: str


def validate_request(request: RepairRequest) -> None:
    """Exactly one source of segments; a local data directory must have a pg_wal."""
    if (request.pgdata is None) == (request.connection is None):
        raise InputError(
            "--repair reads the missing segments from the server: give --pgdata DIR or the "
            "connection flags (--host, --port, --user, --dbname), not both"
        )
    if request.pgdata is not None and not os.path.isdir(os.path.join(request.pgdata, "pg_wal")):
        raise InputError(f"{request.pgdata} is not a PostgreSQL data directory (no pg_wal)")


def public_request(request: RepairRequest) -> RepairRequest:
    """The request without credentials (URL parameters, a password in the conninfo)."""
    connection = request.connection
    if connection is not None:
        connection = replace(connection, dbname=without_password(connection.dbname))
    return replace(request, location=request.location.without_credentials(), connection=connection)


def gap_report(store: ObjectStore, server: str) -> GapReport:
    """The archive's gaps with the backups each one cuts (core.wal.gaps)."""
    archived = archived_wals(store, server)
    backups = Catalog(store, server).backups()
    sizes = [b.xlog_segment_size for b in backups if b.xlog_segment_size]
    size = sizes[-1] if sizes else DEFAULT_SEGMENT_SIZE
    coverage = check_backups(backups, archived, read_histories(store, archived))
    return GapReport(tuple(archive_gaps(archived, coverage, size)), size, len(archived))


class PgWal:
    """Reads segments of a server's pg_wal: None when the server no longer has one.

    With a session, through pg_read_binary_file; otherwise from `directory` on this host.
    """

    def __init__(
        self,
        directory: str,
        session: Session | None,
        scratch: str,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> None:
        self.directory = directory
        self.session = session
        self.scratch = scratch
        self.segment_size = segment_size

    @property
    def where(self) -> str:
        if self.session is not None:
            return f"{self.directory} (through pg_read_binary_file)"
        return self.directory

    def read(self, name: str) -> WalFile | None:
        if self.session is None:
            path = os.path.join(self.directory, name)
            return read_wal_file(path) if os.path.exists(path) else None
        data = self.session.one(
            # The four-argument form: PostgreSQL 13 has no (name, missing_ok) one.
            "select pg_read_binary_file(%s, 0, %s, true)",
            (f"pg_wal/{name}", self.segment_size),
            what=f"reading pg_wal/{name}",
        )
        if data is None:
            return None
        # Through a private file, so that the bytes take wal-archive's exact path.
        path = os.path.join(self.scratch, name)
        with open(path, "wb") as fh:
            fh.write(bytes(data))
        try:
            return read_wal_file(path)
        finally:
            os.unlink(path)


@contextmanager
def pg_wal(request: RepairRequest, segment_size: int) -> Iterator[PgWal]:
    """The server's pg_wal, read directly when this host can, else through SQL."""
    with tempfile.TemporaryDirectory(prefix="pgvault-repair-") as scratch:
        if request.connection is None:
            yield PgWal(os.path.join(request.pgdata or ".", "pg_wal"), None, scratch, segment_size)
            return
        with Session(request.connection, application_name="pgvault wal-repair") as session:
            data_dir = str(session.one("show data_directory", what="show data_directory"))
            local = os.path.join(data_dir, "pg_wal")
            if os.access(local, os.R_OK | os.X_OK):
                yield PgWal(local, None, scratch, segment_size)
            else:
                yield PgWal(local, session, scratch, segment_size)


def _compression(store: ObjectStore, server: str) -> str | None:
    """The compression wal-archive uses now: that of the newest archived segment."""
    layout = ServerLayout(server)
    archived = archived_wals(store, server)
    segments = sorted(n for n in archived if is_segment(n))
    if not segments:
        return None
    parsed = layout.parse_wal(archived[segments[-1]])
    codec = parsed[1] if parsed else None
    return codec.name if codec else None


def _system_identifier(store: ObjectStore, server: str) -> int | None:
    ids = {b.systemid for b in Catalog(store, server).backups() if b.systemid}
    return int(ids.pop()) if len(ids) == 1 else None


def run_repair(request: RepairRequest, reporter: Reporter) -> RepairResult:
    """Archive again every missing segment pg_wal still holds; the gaps before and after."""
    validate_request(request)
    with open_store(request.location, request.store_config) as store:
        reporter.phase("checking the archive")
        before = gap_report(store, request.server)
        wanted = [name for gap in before.gaps for name in gap.names(before.segment_size)]
        reporter.set_totals(bytes_total=len(wanted) * before.segment_size, files_total=len(wanted))
        repaired: list[str] = []
        if wanted:
            compression = _compression(store, request.server)
            codec_settings = ArchiveSettings(compression=compression)
            settings = replace(codec_settings, level=resolve_level(codec_settings.codec, None))
            archiver = WalArchiver(store, request.server, settings)
            system = _system_identifier(store, request.server)
            with pg_wal(request, before.segment_size) as source:
                reporter.phase("archiving missing segments")
                for name in wanted:
                    reporter.checkpoint()
                    wal = _read(source, name, system)
                    if wal is None:
                        reporter.log(f"{name}: not in {source.where}; lost", logging.WARNING)
                        reporter.advance(before.segment_size, files=1)
                        continue
                    archiver.archive_file(wal, reporter=reporter)
                    repaired.append(name)
                    reporter.log(f"{name}: archived again from {source.where}")
                where = source.where
        else:
            where = request.pgdata or "the server"
        reporter.phase("checking the archive again")
        after = gap_report(store, request.server)
    return RepairResult(request.server, before, tuple(repaired), after, where)


def _read(source: PgWal, name: str, system: int | None) -> WalFile | None:
    """The segment from pg_wal; None when gone or recycled (its header names another)."""
    try:
        wal = source.read(name)
    except WalRejected as exc:
        log.warning("%s", exc)
        return None
    if wal is not None and system is not None and wal.system_identifier not in (None, system):
        raise InputError(
            f"{source.where} holds WAL of database system {wal.system_identifier}, but the "
            f"backups of this server are of {system}: point --pgdata or the connection at "
            "the server that archives here"
        )
    return wal


def lost_lines(report: GapReport) -> list[str]:
    """Each remaining gap as the recovery range it loses and the backups it cuts."""
    lines = []
    for gap in report.gaps:
        start, end = gap.lsn_range(report.segment_size)
        line = (
            f"lost: timeline {gap.timeline} WAL {start} to {end} "
            f"({gap.first_missing}..{gap.last_missing}, {gap.segments} segment(s))"
        )
        restorable = [b for b in gap.backups if b not in gap.unrestorable]
        if gap.unrestorable:
            line += f"; cannot be restored: backup(s) {', '.join(gap.unrestorable)}"
        if restorable:
            line += f"; recovery from backup(s) {', '.join(restorable)} stops at {start}"
        lines.append(line)
    return lines


RECOMMENDATION = (
    "the server no longer holds this WAL: take a new full backup "
    "(pgvault --batch backup) so that point-in-time recovery no longer needs it"
)
