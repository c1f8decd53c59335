"""The logical restore: a database (under its name or a new one) or some of its tables
(into the same or another existing database), on a running server, by pg_restore -j.

    run_logical_restore(LogicalRestoreRequest(...), reporter) -> LogicalRestoreResult

Staging needs the archive's stored size for a database restore (only toc.dat and the
chosen tables' data files for a table restore). Owners and grants are not restored: the
restoring role owns what it creates (the seed's rule), so roles need not exist.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from core.catalog.reader import Catalog
from core.crypto import DecryptingReader
from core.encryption import unlocked_keys
from core.errors import (
    InputError,
    IntegrityError,
    ObjectNotFound,
    OperationFailed,
    PgvaultError,
)
from core.logical import integrity, target
from core.logical.attempt import mark_staging, staging_prefix, sweep_staging
from core.logical.catalog import LATEST, resolve_logical
from core.logical.inventory import check_database, pattern_parts
from core.logical.layout import LogicalLayout, is_logical_id
from core.logical.load_log import LoadLog, table_data_ids
from core.logical.local_files import place, same_filesystem, unlink_all
from core.logical.lock_wait import LockWatcher
from core.logical.manifest import (
    DatabaseDump,
    DumpFile,
    LogicalManifest,
    TableEntry,
    with_partitions,
)
from core.logical.process import Piped, run_tool, tool_conninfo
from core.logical.restore_errors import (
    foreign_key_hint,
    left_state,
    missing_relation_hint,
    rolled_back,
)
from core.logical.selection import (
    Selection,
    data_files,
    database_listing,
    select_entries,
    toc_partitions,
)
from core.logical.tools import Tool, find_tool, psql_for
from core.postgres.connection import ConnectionParams
from core.postgres.versions import major
from core.progress import NullReporter, Reporter
from core.storage import ObjectReader, ObjectStore, StoreConfig, open_store
from core.urls import Location

TOC = "toc.dat"


@dataclass(frozen=True)
class LogicalRestoreRequest:
    location: Location
    server: str
    backup: str  # an ID, a name or latest
    store_config: StoreConfig = field(default_factory=StoreConfig)
    connection: ConnectionParams = field(default_factory=ConnectionParams)
    database: str | None = None  # which database of the backup (needed when it holds several)
    new_db_name: str | None = None
    into_db: str | None = None
    tables: tuple[str, ...] = ()
    clean: bool = False
    foreign_keys: bool = True
    jobs: int = 2
    staging_dir: str | None = None
    pg_bindir: str | None = None
    #: every database of an --all-databases backup, after its globals.sql (restore_all)
    all_databases: bool = False


@dataclass(frozen=True)
class LogicalRestoreResult:
    backup_id: str
    database: str  # in the backup
    target_database: str
    tables: tuple[str, ...]  # restored (empty: the whole database)
    bytes_downloaded: int
    pg_restore: str


def validate_request(request: LogicalRestoreRequest) -> None:
    if request.all_databases and (
        request.database or request.new_db_name or request.into_db or request.tables
    ):
        raise InputError(
            "--all-databases restores every database under its own name: --database, "
            "--new-db-name, --into-db and --table restore one"
        )
    if request.into_db and request.new_db_name:
        raise InputError("--into-db and --new-db-name exclude each other")
    if request.into_db and not request.tables:
        raise InputError(
            "--into-db restores tables (--table): a database restore takes --new-db-name"
        )
    if not request.foreign_keys and request.all_databases:
        raise InputError("--no-foreign-keys applies to one database's or its tables' restore")
    if request.jobs < 1:
        raise InputError("-J must be at least 1")
    name = request.new_db_name
    if name is not None and len(name.encode()) > target.MAX_NAME_BYTES:
        raise InputError(
            f"--new-db-name {name!r} has {len(name.encode())} bytes: PostgreSQL names have "
            f"at most {target.MAX_NAME_BYTES} (it would cut the name short)"
        )
    if request.staging_dir is not None and not os.path.isdir(request.staging_dir):
        raise InputError(f"--staging-dir {request.staging_dir} is not a directory")


def _logical_backup(store: ObjectStore, request: LogicalRestoreRequest) -> LogicalManifest:
    """The logical backup the request names; a physical backup named so is bad input (its
    connection flags made the restore a logical one)."""
    try:
        return resolve_logical(store, request.server, request.backup, request.database)
    except ObjectNotFound as missing:
        if request.backup in LATEST or is_logical_id(request.backup):
            raise
        try:
            physical = Catalog(store, request.server).resolve(request.backup)
        except PgvaultError:
            raise missing from None
        raise InputError(
            f"backup {physical.backup_id} of server {request.server} is a physical backup: "
            "restore it into a RECOVERY_DIR (-d, --host, -U, --staging-dir and --pg-bindir "
            "are for logical restores)"
        ) from None


def _choose_database(manifest: LogicalManifest, name: str | None) -> DatabaseDump:
    if name is not None:
        return manifest.database(name)
    if len(manifest.databases) != 1:
        raise InputError(
            f"logical backup {manifest.backup_id} holds several databases: name one with --database"
        )
    return manifest.databases[0]


def match_tables(dump: DatabaseDump, patterns: tuple[str, ...]) -> tuple[TableEntry, ...]:
    """The backup's tables the patterns name (a pattern without schema: any schema), with
    the partitions of a partitioned table."""
    chosen: dict[str, TableEntry] = {}
    for pattern in patterns:
        check_database(pattern, dump.name)
        schema_re, name_re = pattern_parts(pattern)
        try:
            hits = [
                t
                for t in dump.tables
                if re.fullmatch(name_re, t.name)
                and (schema_re is None or re.fullmatch(schema_re, t.schema))
            ]
        except re.error as exc:
            raise InputError(f"invalid table pattern {pattern!r}: {exc}") from None
        if not hits:
            raise InputError(
                f"no table of logical backup matches {pattern!r} in database {dump.name!r}"
            )
        chosen.update({t.qualified: t for t in hits})
    return with_partitions(tuple(chosen.values()), dump.tables)


def dump_major(manifest: LogicalManifest) -> int:
    found = re.search(r"\) (\d+)", manifest.pg_dump_version)
    return int(found[1]) if found else major(manifest.server_version)


def _tool(params: ConnectionParams, manifest: LogicalManifest, bindir: str | None) -> Tool:
    """The target's pg_restore; InputError when the target is older than the dump."""
    target_major = major(target.server_version(params))
    written = dump_major(manifest)
    if target_major < written:
        raise InputError(
            f"logical backup {manifest.backup_id} was written by pg_dump {written} and "
            f"the target server is PostgreSQL {target_major}: PostgreSQL loads a dump only "
            f"into its own or a later version; restore into PostgreSQL {written} or later"
        )
    return find_tool("pg_restore", target_major, written, bindir)


def run_logical_restore(
    request: LogicalRestoreRequest, reporter: Reporter | None = None
) -> LogicalRestoreResult:
    reporter = reporter or NullReporter()
    validate_request(request)
    staging = request.staging_dir or tempfile.gettempdir()
    sweep_staging(staging)  # what killed backups and restores left
    store = open_store(request.location, request.store_config)
    store.meter = reporter.transferred
    store.gate = reporter.checkpoint
    with store:
        manifest = _logical_backup(store, request)
        dump = _choose_database(manifest, request.database)
        tables = match_tables(dump, request.tables) if request.tables else ()
        into = request.into_db or request.new_db_name or dump.name
        params = request.connection
        tool = _tool(params, manifest, request.pg_bindir)
        new_tables: tuple[TableEntry, ...] = ()
        load_into, replace = into, False
        if tables:
            new_tables = target.check_tables(
                params, into, tables, request.clean, request.foreign_keys
            )
        else:
            replace = target.check_new_database(params, into, request.clean)
            _say_subset(manifest, dump, reporter)
            # loaded under a temporary name, then renamed: a killed restore never leaves a
            # half-restored database under the asked name, and --clean keeps the old one
            # until the new one is complete
            load_into = target.temporary_name(manifest.backup_id)
            for name in target.drop_abandoned(params):
                reporter.log(f"dropped database {name}, left by a killed logical restore")
        with tempfile.TemporaryDirectory(prefix=staging_prefix(), dir=staging) as tmp:
            mark_staging(tmp)
            run = _Run(request, manifest, dump, tool, store, reporter, os.path.join(tmp, "dump"))
            run.check_later = load_into != into
            run.tables, run.new_tables, run.into = tables, new_tables, into
            try:
                downloaded = run.fetch()
                run.restore_or_undo(load_into, not tables)
            finally:
                unlink_all(run.linked)
        if load_into != into:
            target.take_name(params, load_into, into, replace)
        reporter.advance(run.restore_share - run.claimed, files=1)  # only now: complete
    tables, dump = run.tables, run.dump
    return LogicalRestoreResult(
        backup_id=manifest.backup_id,
        database=dump.name,
        target_database=into,
        # a --table backup restored as a database holds only its tables: named, not 'database'
        tables=tuple(t.qualified for t in tables or (dump.tables if dump.patterns else ())),
        bytes_downloaded=downloaded,
        pg_restore=tool.version,
    )


def _say_subset(manifest: LogicalManifest, dump: DatabaseDump, reporter: Reporter) -> None:
    """A backup taken with --table restored as a database holds only those tables."""
    if dump.patterns:
        reporter.log(
            f"logical backup {manifest.backup_id} holds only {len(dump.tables)} table(s) of "
            f"database {dump.name} (taken with --table {' --table '.join(dump.patterns)})"
        )


@dataclass
class _Run:
    request: LogicalRestoreRequest
    manifest: LogicalManifest
    dump: DatabaseDump
    tool: Tool
    store: ObjectStore
    reporter: Reporter
    directory: str
    listing: str | None = None
    #: the progress pg_restore's part counts for (as much as the download): none is claimed
    #: before the restored database or tables are complete
    restore_share: int = 0
    #: staging files that are links to stored files (removed before the directory is)
    linked: list[str] = field(default_factory=list)
    #: a database restore loads a temporary database, dropped if a check fails: its linked
    #: files are checked while pg_restore reads them, not in a pass of their own before
    check_later: bool = False
    unchecked: list[tuple[str, DumpFile, str]] = field(default_factory=list)
    #: of restore_share, what pg_restore's finished items already claimed
    claimed: int = 0
    loaded: int = 0  # tables whose data pg_restore finished loading
    #: a table restore's tables (with their partitions), those it creates, and its database
    tables: tuple[TableEntry, ...] = ()
    new_tables: tuple[TableEntry, ...] = ()
    into: str = ""

    def fetch(self) -> int:
        """Download toc.dat, then the data files the restore reads; bytes downloaded."""
        os.makedirs(self.directory)
        self.reporter.phase("download")
        files = [f for f in self.dump.files if f.name != TOC]
        toc = [f for f in self.dump.files if f.name == TOC]
        if not toc:
            raise OperationFailed(f"logical backup {self.manifest.backup_id} has no {TOC}")
        # a table restore downloads toc.dat, then only the chosen tables' files
        self._check_space(tuple(toc) if self.tables else self.dump.files)
        done = self._get(toc[0])
        if self.tables or not self.request.foreign_keys or self.dump.patterns:
            files = self._choose(files)  # a whole database's restore takes every entry
        self.restore_share = sum(f.size for f in files) + done
        self.reporter.set_totals(bytes_total=2 * self.restore_share, files_total=len(files) + 2)
        with ThreadPoolExecutor(self.request.jobs, thread_name_prefix="pgvault-logical") as pool:
            done += sum(pool.map(self._get, files))
        return done

    def _choose(self, files: list[DumpFile]) -> list[DumpFile]:
        """The entries restored (the -L listing) and the data files they read."""
        listed = run_tool(  # -v: what each entry depends on
            [self.tool.path, "-l", "-v", self.directory], "pg_restore -l", self.reporter.checkpoint
        )
        self._partitions(listed)
        if not self.tables:
            self.listing = database_listing(listed, self.dump.tables, self.request.foreign_keys)
            return files
        selection = self._select(listed)
        self.listing = selection.listing
        chosen = data_files(files, selection.data_ids)
        self._check_space(tuple(chosen))
        return chosen

    def _partitions(self, listed: str) -> None:
        """A logical.json older than partition tracking: each partition's parent from the
        dump's own TOC, so that a partitioned table comes with its partitions."""
        derived = toc_partitions(listed, self.dump.tables)
        if derived is None or not (self.tables or self.dump.patterns):
            return  # a whole database's entries are all restored: nothing to choose
        self.dump = dataclasses.replace(self.dump, tables=derived)
        self.reporter.log(
            f"logical backup {self.manifest.backup_id} does not record partitions (written "
            "by an older pgvault): partitioned tables and their partitions taken from its TOC"
        )
        if self.tables:
            self.tables = match_tables(self.dump, self.request.tables)
            self.new_tables = target.check_tables(
                self.request.connection,
                self.into,
                self.tables,
                self.request.clean,
                self.request.foreign_keys,
            )

    def _select(self, listed: str) -> Selection:
        """The table restore's entries; a sequence a partition's default uses (its parent's)
        comes too unless the target has it already (which its default then uses)."""
        fk = self.request.foreign_keys
        selection = select_entries(listed, self.tables, fk)
        existing = target.existing_sequences(self.request.connection, self.into, selection.borrowed)
        if existing:
            selection = select_entries(listed, self.tables, fk, existing)
            for tag in existing:
                self.reporter.log(
                    f"sequence {tag.replace(' ', '.', 1)}, which a restored table's column "
                    "default uses, exists in the target: kept as it is (not restored)"
                )
        for tag in selection.borrowed:
            self.reporter.log(
                f"restoring sequence {tag.replace(' ', '.', 1)} (a restored table's column "
                "default uses it; the table owning it is not restored: it is owned by none)"
            )
        return selection

    def _check_space(self, files: tuple[DumpFile, ...]) -> None:
        """Enough room for what is written: a linked local file takes none."""
        need = sum(f.size for f in files if not self._links(f))
        free = shutil.disk_usage(self.directory).free
        if need > free:
            raise OperationFailed(
                f"staging needs {need} bytes in {os.path.dirname(self.directory)} and "
                f"{free} are free: name a larger directory with --staging-dir"
            )

    def _key(self, item: DumpFile) -> str:
        return LogicalLayout(self.manifest.server).dump_file(
            self.manifest.backup_id, self.dump.name, item.name
        )

    def _local(self, item: DumpFile) -> Path | None:
        """The stored file when it holds what pg_restore reads (no pgvault-side sealing)."""
        return None if self.manifest.encrypted else self.store.local_file(self._key(item))

    def _links(self, item: DumpFile) -> bool:
        stored = self._local(item)
        return stored is not None and same_filesystem(stored, self.directory)

    def _get(self, item: DumpFile) -> int:
        local = self._local(item)
        if local is not None:
            return self._place(item, local)
        key = self._key(item)
        size = 0
        with (
            self.store.open_reader(key) as stored,
            open(os.path.join(self.directory, item.name), "wb") as out,
        ):
            reader: ObjectReader | DecryptingReader = stored
            if self.manifest.encrypted:
                identities = unlocked_keys(self.store, self.manifest.server).identities
                reader = DecryptingReader(stored, identities, key)

            def write(chunk: bytes) -> None:
                out.write(chunk)
                self.reporter.advance(len(chunk))

            size, sha256 = integrity.copy_hashing(reader.read, write)
        # Before pg_restore reads it: nothing is created from a damaged object.
        integrity.check(key, item, sha256, self.manifest.backup_id)
        self.reporter.advance(files=1)
        return size

    def _place(self, item: DumpFile, stored: Path) -> int:
        """A local destination's file linked (or copied) into staging, not read through."""
        path = os.path.join(self.directory, item.name)
        if place(stored, path):
            self.linked.append(path)
        size = os.stat(path).st_size
        if size != item.size:
            raise OperationFailed(
                f"stored file {stored} has {size} bytes where logical backup "
                f"{self.manifest.backup_id} recorded {item.size}"
            )
        if item.sha256 is not None and self.check_later:
            self.unchecked.append((str(stored), item, path))
        elif item.sha256 is not None:
            self._check_file(str(stored), item, path)
        self.reporter.advance(size, files=1)
        return size

    def _check_file(self, name: str, item: DumpFile, path: str) -> None:
        with open(path, "rb") as f:

            def read(size: int) -> bytes:
                self.reporter.checkpoint()  # paused or cancelled with the restore
                return f.read(size)

            integrity.check(name, item, integrity.copy_hashing(read)[1], self.manifest.backup_id)

    def _check_unchecked(self) -> None:
        for name, item, path in self.unchecked:
            self._check_file(name, item, path)

    def restore_checked(self, into: str, tables: tuple[TableEntry, ...], create_db: bool) -> None:
        """pg_restore, with the linked files' checksums read beside it; a damage names itself."""
        if not self.unchecked:
            self.restore(into, tables, create_db)
            return
        with ThreadPoolExecutor(1, thread_name_prefix="pgvault-checksum") as pool:
            checked = pool.submit(self._check_unchecked)
            try:
                self.restore(into, tables, create_db)
            except BaseException:
                # pg_restore may fail on the damaged file first: the damage is the cause
                damage = checked.exception()
                if isinstance(damage, IntegrityError):
                    raise damage from None
                raise
            checked.result()

    def restore(self, into: str, tables: tuple[TableEntry, ...], create_db: bool) -> None:
        params = self.request.connection
        self.reporter.phase("restore")
        if create_db:
            target.create_database(params, into, self.dump.encoding)
        if tables or (create_db and self.dump.patterns):
            # pg_dump -t dumps no schema: a table's (or a --table backup's) may be missing
            chosen = tables or self.dump.tables
            target.create_schemas(params, into, {t.schema for t in chosen})
        application = f"{target.APP} {self.manifest.backup_id} {os.getpid()}"
        dsn, password = tool_conninfo(params, into, application)
        argv = self._command(dsn, tables)
        piped = isinstance(argv, Piped)
        log = LoadLog(piped or self.request.jobs == 1, self._data_ids(), self._loaded)
        locks = LockWatcher("pg_restore", params, into, application, self.reporter)
        try:
            run_tool(
                argv,
                "pg_restore",
                self.reporter.checkpoint,
                password,
                watch=lambda: locks.look("restore"),
                on_stderr=log.line,
            )
            log.ended()
            locks.finished()
        except OperationFailed as exc:
            exc = rolled_back(exc, piped)
            raise missing_relation_hint(foreign_key_hint(exc, self.request.foreign_keys)) from None
        finally:
            locks.close()

    def _command(self, dsn: str, tables: tuple[TableEntry, ...]) -> list[str] | Piped:
        """pg_restore -j J into the database; for --clean of tables, pg_restore's script
        (-f -) run by psql in one transaction with the drops before it: a failure or a kill
        rolls back, and the old tables stay. One transaction is one session: no -j then."""
        options = ["--no-owner", "--no-privileges", "--verbose"]  # -v: the progress (load_log)
        if self.listing is not None:
            path = os.path.join(os.path.dirname(self.directory), "restore.list")
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.listing)
            options += ["-L", path]
        if not (tables and self.request.clean):
            argv = [self.tool.path, "-d", dsn, "-j", str(self.request.jobs), "--exit-on-error"]
            return [*argv, *options, self.directory]
        source = [self.tool.path, "-f", "-", "--single-transaction", "--clean", "--if-exists"]
        psql = [psql_for(self.tool, self.request.pg_bindir).path, "-X", "-q", "-d", dsn]
        psql += ["-v", "ON_ERROR_STOP=1"]
        drops = target.partitioned_drops(tables)
        if drops:  # before pg_restore's own BEGIN, which is then a warning and no more
            psql += ["-c", "begin", *(x for d in drops for x in ("-c", d))]
        return Piped([*source, *options, self.directory], [*psql, "-f", "-"])

    def restore_or_undo(self, into: str, create_db: bool) -> None:
        """restore_checked; when it fails, what it made is removed, and its error says
        what the target holds now."""
        params = self.request.connection
        try:
            self.restore_checked(into, self.tables, create_db)
        except OperationFailed as exc:
            undone = target.undo(params, into, create_db, self.new_tables)
            if type(exc) is not OperationFailed:  # a cancel, a damage, a lost server: as is
                raise
            clean = bool(self.tables) and self.request.clean
            raise left_state(
                exc, into if create_db else None, undone, clean, self.new_tables
            ) from None
        except BaseException:
            target.undo(params, into, create_db, self.new_tables)
            raise

    def _data_ids(self) -> dict[str, int]:
        """Dump IDs by table name, which a serial pg_restore logs in place of the IDs."""
        if self.request.jobs != 1 and not (self.request.tables and self.request.clean):
            return {}
        listing = self.listing
        if listing is None:
            listing = run_tool(
                [self.tool.path, "-l", self.directory], "pg_restore -l", self.reporter.checkpoint
            )
        return table_data_ids(listing, self.dump.tables)

    def _loaded(self, dump_id: int | None) -> None:
        """A table's data loaded: most of its file's share claimed, the rest when the whole
        restore is (its indexes and constraints come after)."""
        self.loaded += 1
        self.reporter.detail("tables_loaded", self.loaded)
        name = str(dump_id)
        size = next((f.size for f in self.dump.files if f.name.split(".")[0] == name), 0)
        claim = min(int(size * LOADED_SHARE), self.restore_share - self.claimed - 1)
        if claim > 0:
            self.claimed += claim
            self.reporter.advance(claim)


#: of a table's share of the restore, what its loaded data claims before the end
LOADED_SHARE = 0.9


def summary(result: LogicalRestoreResult) -> str:
    what = f"tables {', '.join(result.tables)} of" if result.tables else "database"
    return (
        f"restored {what} {result.database} from logical backup {result.backup_id} into "
        f"database {result.target_database} ({result.bytes_downloaded} bytes downloaded, "
        f"{result.pg_restore})"
    )
