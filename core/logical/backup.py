"""The logical backup: one database (or the tables some patterns name), or every database
with the globals, as pg_dump -Fd.

    run_logical_backup(LogicalBackupRequest(...), reporter) -> LogicalBackupResult

Check the database and the patterns (bad names are exit 3 before anything is stored),
choose pg_dump by the server's major version, claim an ID (or take over the one to resume,
core.logical.attempt), hold a lease while dumping and uploading (core.logical.dumper), then
write `logical.json` last. A failure or a cancel removes what was uploaded; a killed run
leaves no `logical.json`: nothing half-written is ever listed as restorable.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core import __version__
from core.backup.lease import heartbeat_at, new_lease
from core.catalog.layout import validate_backup_name, validate_server_name
from core.crypto import X25519Recipient
from core.encryption import backup_recipient, seal
from core.errors import InputError, PgvaultError
from core.logical.attempt import (
    lease_key,
    reap_abandoned,
    reclaim,
    remove_attempt,
    sweep_staging,
)
from core.logical.dumper import DumpSpec, compression_flag, dump_and_upload
from core.logical.inventory import (
    DatabaseFacts,
    borrowed_sequences,
    database_facts,
    list_databases,
    relations,
    select_tables,
)
from core.logical.layout import LogicalLayout, new_backup_id
from core.logical.manifest import DatabaseDump, LogicalManifest, TableEntry
from core.logical.process import run_tool, tool_conninfo
from core.logical.request import LogicalBackupRequest
from core.logical.tools import Tool, find_tool
from core.postgres.versions import major
from core.progress import NullReporter, Reporter
from core.storage import ObjectStore, PutOptions, open_store, validate_tags

log = logging.getLogger("pgvault.logical")

COMPRESSIONS = (None, "gzip", "lz4", "zstd")


@dataclass(frozen=True)
class LogicalBackupResult:
    backup_id: str
    database: str
    tables: tuple[str, ...]  # schema.table of each table it holds
    files: int
    stored_bytes: int
    pg_dump: str


def validate_request(request: LogicalBackupRequest) -> None:
    validate_server_name(request.server)
    if request.all_databases == bool(request.database):
        raise InputError("name one database with --database NAME, or pass --all-databases")
    if request.all_databases and request.tables:
        raise InputError("--table applies to one database (--database NAME)")
    if request.name is not None:
        validate_backup_name(request.name)
    if request.compression not in COMPRESSIONS:
        raise InputError(
            f"a logical backup cannot use {request.compression}: use --gzip, --lz4 or --zstd"
        )
    if request.jobs < 1:
        raise InputError("-J must be at least 1")
    if request.staging_dir is not None and not os.path.isdir(request.staging_dir):
        raise InputError(f"--staging-dir {request.staging_dir} is not a directory")
    validate_tags(request.tags)


def application_name(backup_id: str) -> str:
    """pg_dump's: the lock watcher finds its sessions by it."""
    return f"pgvault logical backup {backup_id}"


@dataclass(frozen=True)
class _Plan:
    """What the server told before pg_dump runs."""

    databases: tuple[tuple[DatabaseFacts, tuple[TableEntry, ...]], ...]
    tool: Tool
    dumpall: Tool | None  # --all-databases: for the globals
    recipient: X25519Recipient | None  # an encrypted server's: every object sealed to it
    options: PutOptions  # every object carries the request's tags


def run_logical_backup(
    request: LogicalBackupRequest, reporter: Reporter | None = None
) -> LogicalBackupResult:
    reporter = reporter or NullReporter()
    validate_request(request)
    store = open_store(request.location, request.store_config)
    store.meter = reporter.transferred
    with store:
        reporter.phase("inventory")
        # An encrypted server's objects are all age files, as its physical backups' are:
        # the clear recipient is all a (write-only) host needs.
        plan = _plan(request, backup_recipient(store, request.server))
        layout = LogicalLayout(request.server)
        backup_id = _take_id(request, store, layout, reporter)
        reporter.detail("backup_id", backup_id)
        store.gate = reporter.checkpoint
        try:
            with heartbeat_at(store, lease_key(layout, backup_id), new_lease()):
                manifest = _dump(request, plan, store, backup_id, reporter)
        except BaseException:
            _remove(store, layout, backup_id)
            raise
    return LogicalBackupResult(
        backup_id=backup_id,
        database=",".join(d.name for d in manifest.databases),
        tables=tuple(t.qualified for _, tables in plan.databases for t in tables),
        files=sum(len(d.files) for d in manifest.databases),
        stored_bytes=manifest.stored_size,
        pg_dump=plan.tool.version,
    )


def _plan(request: LogicalBackupRequest, recipient: X25519Recipient | None) -> _Plan:
    """The databases, their tables (bad names refused), and the pg_dump to run."""
    if request.database:
        chosen = [database_facts(request.connection, request.database)]
    else:
        chosen = list_databases(request.connection)
    databases = []
    for facts in chosen:
        found = relations(request.connection, facts.name)
        databases.append((facts, select_tables(found, request.tables, facts.name)))
    server_major = major(chosen[0].server_version)
    tool = find_tool("pg_dump", server_major, server_major, request.pg_bindir)
    compression_flag(request.compression, tool.major)
    dumpall = None
    if request.all_databases:
        dumpall = find_tool("pg_dumpall", server_major, server_major, request.pg_bindir)
    return _Plan(tuple(databases), tool, dumpall, recipient, PutOptions(tags=request.tags))


def _dump(
    request: LogicalBackupRequest,
    plan: _Plan,
    store: ObjectStore,
    backup_id: str,
    reporter: Reporter,
) -> LogicalManifest:
    """pg_dump uploaded file by file, then logical.json: the backup exists from then on."""
    started = datetime.now(UTC)
    layout = LogicalLayout(request.server)
    dumps = [
        _dump_database(request, plan, database, store, (backup_id, reporter))
        for database in plan.databases
    ]
    globals_file = _globals(request, plan, store, backup_id, reporter)
    reporter.phase("seal")
    facts = plan.databases[0][0]
    manifest = LogicalManifest(
        backup_id=backup_id,
        server=request.server,
        name=request.name,
        started=started.isoformat(),
        finished=datetime.now(UTC).isoformat(),
        pgvault_version=__version__,
        server_version=facts.server_version,
        server_version_text=facts.server_version_text,
        pg_dump_version=plan.tool.version,
        compression=request.compression,
        jobs=request.jobs,
        databases=tuple(dumps),
        globals_file=globals_file,
        encrypted=plan.recipient is not None,
    )
    store.put_bytes(
        layout.manifest(backup_id), seal(manifest.to_bytes(), plan.recipient), plan.options
    )
    return manifest


def _dump_database(
    request: LogicalBackupRequest,
    plan: _Plan,
    database: tuple[DatabaseFacts, tuple[TableEntry, ...]],
    store: ObjectStore,
    where: tuple[str, Reporter],
) -> DatabaseDump:
    """One database's pg_dump archive under db/<name>/ (its own snapshot)."""
    facts, tables = database
    backup_id, reporter = where
    phase = f"dump {facts.name}"
    reporter.phase(phase)
    spec = DumpSpec(
        tool=plan.tool,
        connection=request.connection,
        database=facts.name,
        application_name=application_name(backup_id),
        patterns=_dump_patterns(request, facts.name, tables),
        jobs=request.jobs,
        compression=request.compression,
        staging_dir=request.staging_dir,
        staging_limit=request.staging_limit,
        recipient=plan.recipient,
        options=plan.options,
        phase=phase,
    )
    prefix = LogicalLayout(request.server).dump_prefix(backup_id, facts.name)
    files = dump_and_upload(spec, store, prefix, reporter)
    return DatabaseDump(
        name=facts.name,
        encoding=facts.encoding,
        size=facts.size,
        tables=tables,
        files=files,
        patterns=request.tables,
    )


def _dump_patterns(
    request: LogicalBackupRequest, database: str, tables: tuple[TableEntry, ...]
) -> tuple[str, ...]:
    """pg_dump's -t: the operator's patterns, each partition of a partitioned table they
    name (pg_dump -t of a partitioned table dumps it empty, without its partitions), and
    the sequences their defaults use that they do not own (a partition's parent's)."""
    patterns = request.tables
    if not patterns:
        return ()
    borrowed = borrowed_sequences(request.connection, database, tables)
    return (
        patterns
        + tuple(t.pattern for t in tables if t.partition_of is not None)
        + tuple(TableEntry(s, n, None, 0).pattern for s, n in borrowed)
    )


def _globals(
    request: LogicalBackupRequest,
    plan: _Plan,
    store: ObjectStore,
    backup_id: str,
    reporter: Reporter,
) -> str | None:
    """Roles (without passwords) and tablespaces, as pg_dumpall --globals-only writes them."""
    if plan.dumpall is None:
        return None
    reporter.phase("globals")
    key = LogicalLayout(request.server).globals_sql(backup_id)
    database = plan.databases[0][0].name
    dsn, password = tool_conninfo(request.connection, database, application_name(backup_id))
    argv = [plan.dumpall.path, "--globals-only", "--no-role-passwords", "-d", dsn]
    sql = run_tool(argv, "pg_dumpall --globals-only", reporter.checkpoint, password)
    store.put_bytes(key, seal(sql.encode(), plan.recipient), plan.options)
    return key.rsplit("/", 1)[-1]


def _claim(store: ObjectStore, layout: LogicalLayout) -> str:
    """A new ID: the current local time, a second later while one is taken."""
    moment = datetime.now()
    while True:
        backup_id = new_backup_id(moment)
        if not any(True for _ in store.list_objects(layout.backup_prefix(backup_id))):
            return backup_id
        moment += timedelta(seconds=1)


def _take_id(
    request: LogicalBackupRequest, store: ObjectStore, layout: LogicalLayout, reporter: Reporter
) -> str:
    """The ID to resume (what its attempt left removed), or a new one; killed attempts of
    the server (objects and staging directories) are cleaned up first."""
    sweep_staging(request.staging_dir or tempfile.gettempdir())
    if request.resume is None:
        try:
            reap_abandoned(store, request.server)
        except PgvaultError as exc:  # housekeeping: never the reason a backup is not taken
            log.warning("could not look for abandoned logical backups: %s", exc)
        return _claim(store, layout)
    reporter.phase("resume")
    reclaim(store, layout, request.resume)
    reporter.log(
        f"resuming logical backup {request.resume}: pg_dump's snapshot ended with the failed "
        "run, so the dump is taken again on a new one under the same ID"
    )
    return request.resume


def _remove(store: ObjectStore, layout: LogicalLayout, backup_id: str) -> None:
    """What a failed or cancelled backup uploaded: nothing of it stays."""
    store.gate = None  # the cleanup itself is not paused or cancelled
    try:
        remove_attempt(store, layout, backup_id)
    except Exception as exc:
        log.warning("could not remove the objects of failed logical backup %s: %s", backup_id, exc)


def summary(result: LogicalBackupResult) -> str:
    return (
        f"logical backup {result.backup_id} of database {result.database}: {len(result.tables)} "
        f"tables, {result.files} files, {result.stored_bytes} bytes stored ({result.pg_dump})"
    )
