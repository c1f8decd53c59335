"""`restore --all-databases`: an `--all-databases` logical backup restored whole, on a running
server: its `globals.sql` (roles, tablespaces) first, then every database under its own name.

Every database name is checked before anything is written: one that exists is refused
(exit 3, naming them all) unless `clean`, which replaces each as a single restore does. In
globals.sql, a role or tablespace that already exists is skipped (its CREATE and ALTER
lines) with a log line: an existing role keeps its attributes and password. The file is
applied by the target's psql (pg_dumpall 17.6+ writes psql's `\\restrict` meta-commands).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import replace

from core.encryption import open_object
from core.errors import InputError, ObjectNotFound, OperationFailed
from core.logical import target
from core.logical.catalog import LATEST, list_logical, resolve_logical
from core.logical.layout import LogicalLayout
from core.logical.manifest import DatabaseDump, LogicalManifest
from core.logical.process import run_tool, tool_conninfo
from core.logical.restore import (
    LogicalRestoreRequest,
    LogicalRestoreResult,
    dump_major,
    run_logical_restore,
)
from core.logical.tools import find_tool
from core.postgres.connection import ConnectionParams, Session
from core.postgres.versions import major
from core.progress import NullReporter, Reporter
from core.storage import ObjectStore, open_store

#: `CREATE ROLE name;`, `ALTER ROLE name WITH ...;`, `CREATE TABLESPACE name OWNER ...;`
_OBJECT_LINE = re.compile(r'^(?:CREATE|ALTER) (ROLE|TABLESPACE) ("(?:[^"]|"")*"|[^\s;]+)')


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def existing_globals(params: ConnectionParams) -> tuple[set[str], set[str]]:
    """The target's role names and tablespace names."""
    with Session(params, application_name=target.APP) as session:
        roles = {r[0] for r in session.query("select rolname from pg_roles")}
        spaces = {r[0] for r in session.query("select spcname from pg_tablespace")}
    return roles, spaces


def without_existing(sql: str, roles: set[str], spaces: set[str]) -> tuple[str, list[str]]:
    """globals.sql without the lines that create or alter what exists; what was skipped."""
    kept, skipped = [], []
    for line in sql.splitlines(keepends=True):
        found = _OBJECT_LINE.match(line)
        if found:
            kind, name = found[1], _unquote(found[2])
            if name in (roles if kind == "ROLE" else spaces):
                if line.startswith("CREATE"):
                    skipped.append(f"{kind.lower()} {name}")
                continue
        kept.append(line)
    return "".join(kept), skipped


def chosen(manifest: LogicalManifest, maintenance: str, rep: Reporter) -> list[DatabaseDump]:
    """The databases to restore: all but the maintenance database (the one the restore
    connects to, which exists everywhere) when it held no table; InputError when it did."""
    databases = []
    for dump in manifest.databases:
        if dump.name != maintenance:
            databases.append(dump)
        elif dump.tables:
            raise InputError(
                f"database {dump.name} of the backup holds tables and is the maintenance "
                f"database this restore connects to: restore it alone with --database "
                f"{dump.name} --new-db-name NEW, or connect with -d to another database"
            )
        else:
            rep.log(f"database {dump.name} held no table: skipped (it is the maintenance database)")
    if not databases:
        raise OperationFailed(f"logical backup {manifest.backup_id} holds no database to restore")
    return databases


def check_names(params: ConnectionParams, databases: list[DatabaseDump], clean: bool) -> None:
    """InputError naming every database to restore that exists, without clean."""
    existing = [d.name for d in databases if target.database_exists(params, d.name)]
    if existing and not clean:
        raise InputError(
            f"database(s) {', '.join(existing)} already exist on the target server: pass "
            "--clean to replace them, or restore them one by one with --database and "
            "--new-db-name"
        )


def apply_globals(request: LogicalRestoreRequest, manifest: LogicalManifest, rep: Reporter) -> None:
    """Roles and tablespaces from globals.sql, those that exist skipped (and logged)."""
    params = request.connection
    layout = LogicalLayout(manifest.server)
    rep.phase("globals")
    with open_store(request.location, request.store_config) as store:
        key = layout.globals_sql(manifest.backup_id)
        sql = open_object(store, manifest.server, store.get_bytes(key), key).decode()
    roles, spaces = existing_globals(params)
    sql, skipped = without_existing(sql, roles, spaces)
    for what in skipped:
        rep.log(f"{what} exists on the target server: kept as it is (not created or altered)")
    target_major = major(target.server_version(params))
    psql = find_tool("psql", target_major, dump_major(manifest), request.pg_bindir)
    dsn, password = tool_conninfo(params, None, target.APP)
    with tempfile.TemporaryDirectory(prefix="pgvault-globals-", dir=request.staging_dir) as tmp:
        path = os.path.join(tmp, "globals.sql")
        with open(path, "w", encoding="utf-8") as f:
            f.write(sql)
        argv = [psql.path, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", path]
        run_tool(argv, "psql -f globals.sql", rep.checkpoint, password)


def _resolve(store: ObjectStore, server: str, reference: str) -> LogicalManifest:
    """An ID or a name as any logical restore; latest: the newest --all-databases backup."""
    if reference not in LATEST:
        return resolve_logical(store, server, reference)
    every = [m for m in list_logical(store, server) if m.globals_file is not None]
    if not every:
        raise ObjectNotFound(f"no --all-databases logical backup for server {server}")
    return every[-1]


def run_restore_all(
    request: LogicalRestoreRequest, reporter: Reporter | None = None
) -> LogicalRestoreResult:
    """globals.sql, then every database of the backup under its own name, one after another."""
    rep = reporter or NullReporter()
    with open_store(request.location, request.store_config) as store:
        manifest = _resolve(store, request.server, request.backup)
    if manifest.globals_file is None:
        raise InputError(
            f"logical backup {manifest.backup_id} was not taken with --all-databases: "
            "restore its database with --database"
        )
    databases = chosen(manifest, target.connected_database(request.connection), rep)
    check_names(request.connection, databases, request.clean)
    apply_globals(request, manifest, rep)
    # One bar for the whole restore: each database's download sets its own totals, which
    # would restart the bar; the grand totals are known from the manifest (each database's
    # pg_restore counts as much as its download, and one file: see run_logical_restore).
    rep.set_totals(
        bytes_total=2 * sum(f.size for d in databases for f in d.files),
        files_total=sum(len(d.files) + 1 for d in databases),
    )
    whole = _GrandTotals(rep)
    downloaded, tool = 0, ""
    for dump in databases:
        rep.log(f"restoring database {dump.name}")
        one = replace(request, backup=manifest.backup_id, database=dump.name, all_databases=False)
        result = run_logical_restore(one, whole)
        downloaded += result.bytes_downloaded
        tool = result.pg_restore
    names = ", ".join(d.name for d in databases)
    return LogicalRestoreResult(manifest.backup_id, names, names, (), downloaded, tool)


class _GrandTotals:
    """The reporter of the whole restore, keeping its totals when one database sets its own."""

    def __init__(self, inner: Reporter) -> None:
        self._inner = inner

    def phase(self, name: str) -> None:
        self._inner.phase(name)

    def set_totals(self, bytes_total: int | None = None, files_total: int | None = None) -> None:
        return None

    def advance(self, nbytes: int = 0, files: int = 0) -> None:
        self._inner.advance(nbytes, files)

    def transferred(self, nbytes: int) -> None:
        self._inner.transferred(nbytes)

    def log(self, message: str, level: int = logging.INFO) -> None:
        self._inner.log(message, level)

    def detail(self, key: str, value: str | int | float | bool | None) -> None:
        self._inner.detail(key, value)

    def checkpoint(self) -> None:
        self._inner.checkpoint()
