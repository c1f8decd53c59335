"""The restore pipeline: the backup pipe run backwards, then recovery configured.

    run_restore(RestoreRequest(...), reporter) -> RestoreResult

Sequence: refuse a non-empty recovery directory or tablespace location; choose the backup
(core.restore.targets); read pgvault.json (per-file and per-archive checksums) when the
backup has one; download every archive part with ranged reads ahead of the reader
(several parts at once, `-J` reads in flight in all), checksum the stored bytes, decompress
with bounded memory, untar safely (core.restore.extract) while checksumming each file;
check that every recorded file arrived; directory modes and owners, an empty pg_wal, the
pg_tblspc links towards each tablespace's location; PostgreSQL's backup_manifest; then the
recovery settings, recovery.signal and restore_command's credentials file; fsync; and
global/pg_control put in place last. Any failure or cancellation removes everything the
restore wrote, so nothing half-restored is ever left that PostgreSQL would start on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import stat
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import google_crc32c

from core.backup_info import BackupInfo
from core.catalog import ArchiveSet, Catalog, StoredArchive
from core.credentials_file import write_credentials
from core.errors import (
    Cancelled,
    InputError,
    IntegrityError,
    OperationFailed,
    PgvaultError,
)
from core.layout import ServerLayout
from core.manifest import (
    ArchiveRecord,
    Checksum,
    PgvaultManifest,
    check_postgres_manifest,
    new_checksum,
)
from core.progress import NullReporter, Reporter
from core.restore.extract import (
    PG_CONTROL,
    PG_CONTROL_PENDING,
    Destination,
    Extractor,
    RestoreState,
    Syncer,
    apply_directory_metadata,
)
from core.restore.recovery import (
    ARCHIVE_MODES,
    CREDENTIAL_MODES,
    CREDENTIALS_FILE,
    SPOOL_DIR,
    capture_credentials,
    command_line,
    config_warnings,
    recovery_settings,
    settings_text,
    wal_restore_argv,
)
from core.restore.targets import RecoveryTarget, choose_backup
from core.restore.tarparse import TarError, TarStream
from core.storage import ObjectStore, StoreConfig, open_store
from core.storage.readers import PrefetchingReader
from core.urls import Location

log = logging.getLogger("pgvault.restore")

MiB = 1024 * 1024
RANGE_SIZE = 8 * MiB  # one ranged read of a stored archive
DECOMPRESSED_READ = 4 * MiB  # one read of decompressed tar bytes
QUEUE_DEPTH = 4
PG_CONTROL_CRC_OFFSET = 288


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


def run_restore(request: RestoreRequest, reporter: Reporter | None = None) -> RestoreResult:
    """Restore one backup and configure its recovery; raises a PgvaultError when it cannot."""
    reporter = reporter or NullReporter()
    plan = _validate(request)
    store = open_store(request.location, request.store_config)
    store.meter = reporter.transferred
    with store:
        return _Restore(request, plan, reporter, store).run()


# ---- validation -----------------------------------------------------------------------------


def validate_request(request: RestoreRequest) -> None:
    """Reject bad input (exit 3), a non-empty RECOVERY_DIR included, before anything starts."""
    plan = _validate(request)
    _empty_or_missing(plan.recovery_dir, "the recovery directory")


@dataclass(frozen=True)
class _Plan:
    recovery_dir: str
    rules: dict[str, str]
    wal_dir: str
    pgvault: str


def default_pgvault_command() -> str:
    """The pgvault executable this process was started as (or the one next to Python)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == "pgvault":
        found = os.path.abspath(argv0) if os.sep in argv0 else shutil.which(argv0)
        if found:
            return found
    beside = os.path.join(os.path.dirname(sys.executable), "pgvault")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("pgvault")
    if found:
        return os.path.abspath(found)
    raise InputError(
        "cannot find the pgvault executable for restore_command: pass --pgvault-command"
    )


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _validate(request: RestoreRequest) -> _Plan:
    ServerLayout(request.server)
    if not request.backup:
        raise InputError("name the backup to restore (an ID, a name, latest or auto)")
    if request.wal_credentials not in CREDENTIAL_MODES:
        raise InputError(f"--wal-credentials-via must be one of {', '.join(CREDENTIAL_MODES)}")
    if request.archive_mode not in ARCHIVE_MODES:
        raise InputError(f"--archive-mode must be one of {', '.join(ARCHIVE_MODES)}")
    if request.wal_prefetch < 0:
        raise InputError("--wal-prefetch must not be negative")
    recovery_dir = os.path.abspath(request.recovery_dir)
    if recovery_dir == "/":
        raise InputError("the recovery directory cannot be /")
    rules: dict[str, str] = {}
    for name, location in request.tablespaces:
        if not name:
            raise InputError(f"invalid tablespace rule {name}:{location} (NAME:LOCATION)")
        if not os.path.isabs(location):
            raise InputError(f"tablespace {name}: the location {location!r} must be absolute")
        if name in rules:
            raise InputError(f"tablespace {name} is relocated twice")
        rules[name] = os.path.normpath(location)
    wal_dir = os.path.abspath(request.wal_restore_dir or recovery_dir + ".pgvault")
    if _inside(wal_dir, recovery_dir) or _inside(recovery_dir, wal_dir):
        raise InputError(
            f"restore_command's directory {wal_dir} must be outside the data directory: "
            "whatever is inside would be copied into every later backup"
        )
    pgvault = request.pgvault_command or default_pgvault_command()
    if not os.path.isabs(pgvault):
        raise InputError(f"--pgvault-command must be an absolute path, not {pgvault!r}")
    if not os.access(pgvault, os.X_OK) or not os.path.isfile(pgvault):
        raise InputError(f"--pgvault-command {pgvault} is not an executable file")
    return _Plan(recovery_dir, rules, wal_dir, pgvault)


def _empty_or_missing(path: str, what: str) -> bool:
    """True when the directory must be created; InputError when it is not empty."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{what} {path} exists and is not a directory")
    if os.listdir(path):
        raise InputError(f"{what} {path} is not empty: pgvault restores into an empty directory")
    return False


def _check_runnable(command: str, uid: int, gid: int, needs_credentials: bool) -> None:
    """Run `COMMAND --batch wal-restore --help` as the data directory's owner."""
    who = f"uid {uid}"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    other = uid != os.geteuid()
    groups: list[int] = []
    if other:
        try:
            user = pwd.getpwuid(uid)
            who = f"{user.pw_name} (uid {uid})"
            groups = os.getgrouplist(user.pw_name, gid)
            env["HOME"] = user.pw_dir
        except KeyError:
            pass
    try:
        result = subprocess.run(
            [command, "--batch", "wal-restore", "--help"],
            capture_output=True,
            text=True,
            cwd="/",
            env=env,
            timeout=120,
            user=uid if other else None,
            group=gid if other else None,
            extra_groups=groups if other else None,
        )
        usable = result.returncode == 0 and "--abort-on-error" in result.stdout
        if needs_credentials:
            usable = usable and "--credentials-file" in result.stdout
        reason = (result.stderr.strip().splitlines() or ["no usable wal-restore"])[-1]
    except (OSError, subprocess.SubprocessError) as exc:
        usable, reason = False, str(exc)
    if not usable:
        raise InputError(
            f"restore_command would run {command} as {who}, the owner of the restored data "
            f"directory, and that fails ({reason}): install pgvault where that user can run "
            "it and pass --pgvault-command PATH"
        )


# ---- downloading ----------------------------------------------------------------------------


class _Aborted(Exception):
    """Another part failed: this one stops quietly."""


class _Budget:
    """Ranged reads in flight across every part (-J), shared out as parts come and go."""

    def __init__(self, jobs: int) -> None:
        self.jobs = max(1, jobs)
        self.semaphore = threading.Semaphore(self.jobs)
        self._readers: list[PrefetchingReader] = []
        self._lock = threading.Lock()

    def _share(self) -> None:
        if self._readers:
            depth = max(2, -(-self.jobs // len(self._readers)))
            for reader in self._readers:
                reader.set_depth(depth)

    def add(self, reader: PrefetchingReader) -> None:
        with self._lock:
            self._readers.append(reader)
            self._share()

    def remove(self, reader: PrefetchingReader) -> None:
        with self._lock:
            if reader in self._readers:
                self._readers.remove(reader)
            self._share()


class _StoredBytes:
    """The stored bytes of one archive, in order: counted, checksummed, reported."""

    def __init__(
        self,
        reader: PrefetchingReader,
        checksum: Checksum | None,
        reporter: Reporter,
        abort: threading.Event,
    ) -> None:
        self._reader = reader
        self._checksum = checksum
        self._reporter = reporter
        self._abort = abort
        self._buffer = memoryview(b"")
        self.size = 0

    def chunk(self) -> bytes:
        """The next downloaded range as it is; b'' at the end."""
        if self._abort.is_set():
            raise _Aborted
        self._reporter.checkpoint()
        data = self._reader.read_chunk()
        if data:
            if self._checksum is not None:
                self._checksum.update(data)
            self.size += len(data)
            self._reporter.advance(len(data))
        return data

    def read(self, n: int) -> bytes:
        if not len(self._buffer):
            self._buffer = memoryview(self.chunk())
        out = bytes(self._buffer[:n])
        self._buffer = self._buffer[n:]
        return out

    def hexdigest(self) -> str | None:
        return self._checksum.hexdigest() if self._checksum is not None else None


class _Pipe:
    """A bounded queue between a part's decompressing thread and its writing thread."""

    def __init__(self) -> None:
        self._items: deque[bytes | None] = deque()
        self._cond = threading.Condition()
        self.failed = False

    def put(self, item: bytes | None) -> None:
        with self._cond:
            while len(self._items) >= QUEUE_DEPTH and not self.failed:
                self._cond.wait(0.5)
            if self.failed:
                raise _Aborted
            self._items.append(item)
            self._cond.notify_all()

    def get(self) -> bytes | None:
        with self._cond:
            while not self._items and not self.failed:
                self._cond.wait(0.5)
            if self.failed:
                raise _Aborted
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def fail(self) -> None:
        with self._cond:
            self.failed = True
            self._cond.notify_all()


@dataclass
class _Unit:
    """Parts that must be restored in order (one archive set without pgvault.json)."""

    parts: list[tuple[ArchiveSet, StoredArchive, Destination]]

    @property
    def size(self) -> int:
        return sum(p.size for _, p, _ in self.parts)


# ---- the restore ----------------------------------------------------------------------------


class _Restore:
    def __init__(
        self, request: RestoreRequest, plan: _Plan, reporter: Reporter, store: ObjectStore
    ) -> None:
        self.request = request
        self.plan = plan
        self.reporter = reporter
        self.store = store
        self.abort = threading.Event()
        self.created: list[str] = []  # directories this restore created (removed on failure)
        self.emptied: list[str] = []  # existing empty directories it writes into
        self.wal_files: list[str] = []  # files written in an existing restore_command dir
        self.syncer: Syncer | None = None
        self.started = time.monotonic()
        self.downloaded = 0
        self.verified: list[str] = []
        self.not_verified: list[str] = []
        self.warnings: list[str] = []
        self.as_root = os.geteuid() == 0
        self.command_checked = False

    # ---- run -------------------------------------------------------------------------------

    def run(self) -> RestoreResult:
        reporter = self.reporter
        reporter.phase("checking the recovery directory")
        recovery_dir = self.plan.recovery_dir
        create_root = _empty_or_missing(recovery_dir, "the recovery directory")
        reporter.phase("choosing the backup")
        self.store.check()
        catalog = Catalog(self.store, self.request.server)
        info = choose_backup(catalog, self.request.backup, self.request.target)
        reporter.detail("backup_id", info.backup_id)
        reporter.log(f"restoring backup {info.backup_id} of server {self.request.server}")
        sets = catalog.archives(info)
        manifest = catalog.pgvault_manifest(info.backup_id)
        pg_manifest = catalog.postgres_manifest(info.backup_id)
        destinations = self._destinations(info, sets)
        creates = {
            d.root: _empty_or_missing(d.root, f"the location of tablespace {d.name}")
            for d in destinations.values()
            if d.name != "data"
        }
        self._check_wal_dir()
        try:
            self._make_dir(recovery_dir, create_root)
            for root, create in creates.items():
                self._make_dir(root, create)
            result = self._restore(info, sets, destinations, manifest, pg_manifest)
        except BaseException as exc:
            self._cleanup(exc)
            raise
        return result

    def _destinations(self, info: BackupInfo, sets: list[ArchiveSet]) -> dict[str, Destination]:
        tablespaces = {t.name: t for t in info.tablespaces or ()}
        unknown = sorted(set(self.plan.rules) - set(tablespaces))
        if unknown:
            known = ", ".join(sorted(tablespaces)) or "none"
            raise InputError(
                f"backup {info.backup_id} has no tablespace {', '.join(unknown)} "
                f"(its tablespaces: {known})"
            )
        destinations = {"data": Destination("data", self.plan.recovery_dir, "")}
        used = {self.plan.recovery_dir: "the recovery directory"}
        for archive_set in sets:
            space = archive_set.tablespace
            if space is None:
                continue
            root = os.path.abspath(self.plan.rules.get(space.name, space.location))
            for other, what in used.items():
                if _inside(root, other) or _inside(other, root):
                    raise InputError(
                        f"tablespace {space.name} would be restored to {root}, which overlaps "
                        f"{what} ({other}): relocate it with --tablespace {space.name}:LOCATION"
                    )
            if _inside(root, self.plan.wal_dir) or _inside(self.plan.wal_dir, root):
                raise InputError(
                    f"tablespace {space.name}'s location {root} overlaps {self.plan.wal_dir}"
                )
            used[root] = f"tablespace {space.name}"
            destinations[archive_set.name] = Destination(
                archive_set.name, root, f"pg_tblspc/{space.oid}/"
            )
        return destinations

    def _check_wal_dir(self) -> None:
        """restore_command's directory must be creatable (or an existing directory)."""
        wal_dir = self.plan.wal_dir
        if os.path.lexists(wal_dir):
            if os.path.islink(wal_dir) or not os.path.isdir(wal_dir):
                raise InputError(f"{wal_dir} exists and is not a directory (--wal-restore-dir)")
            return
        probe = os.path.dirname(wal_dir)
        while not os.path.exists(probe):
            probe = os.path.dirname(probe)
        if not os.access(probe, os.W_OK | os.X_OK):
            raise InputError(
                f"cannot create {wal_dir} (restore_command's credentials and WAL spool): "
                f"{probe} is not writable; choose a place with --wal-restore-dir"
            )

    def _make_dir(self, path: str, create: bool) -> None:
        if not create:
            self.emptied.append(path)
            return
        missing = []
        probe = path
        while not os.path.exists(probe):
            missing.append(probe)
            probe = os.path.dirname(probe)
        try:
            os.makedirs(path, mode=0o700)
        except OSError as exc:
            raise OperationFailed(f"cannot create {path}: {exc.strerror}") from None
        self.created.append(missing[-1] if missing else path)

    # ---- the body --------------------------------------------------------------------------

    def _restore(
        self,
        info: BackupInfo,
        sets: list[ArchiveSet],
        destinations: dict[str, Destination],
        manifest: PgvaultManifest | None,
        pg_manifest: bytes | None,
    ) -> RestoreResult:
        request = self.request
        reporter = self.reporter
        records = None
        algorithm = None
        archive_records: dict[str, ArchiveRecord] = {}
        if manifest is not None:
            records = {f.path: f for f in manifest.files}
            algorithm = manifest.checksum_algorithm
            archive_records = {a.filename: a for a in manifest.archives}
            stored = {p.filename for s in sets for p in s.parts}
            missing = sorted(set(archive_records) - stored)
            extra = sorted(stored - set(archive_records))
            if missing or extra:
                raise IntegrityError(
                    f"backup {info.backup_id}: "
                    + "; ".join(
                        ([f"{', '.join(missing)} recorded but not stored"] if missing else [])
                        + ([f"{', '.join(extra)} stored but not recorded"] if extra else [])
                    )
                )
        else:
            self.not_verified.append(
                f"backup {info.backup_id} has no pgvault.json (barman-cloud wrote it): the "
                "stored archives and the restored files have no checksums to be checked "
                "against; every archive was read to its end-of-archive marker and "
                "decompressed without error"
            )
        if not self.as_root:
            _check_runnable(self.plan.pgvault, os.geteuid(), os.getegid(), True)
            self.command_checked = True
        self.syncer = Syncer(request.sync)
        state = RestoreState(
            records=records,
            algorithm=algorithm,
            as_root=self.as_root,
            tablespace_oids=frozenset(str(t.oid) for t in info.tablespaces or ()),
            syncer=self.syncer,
            advance_files=lambda n: reporter.advance(0, files=n),
        )
        if self.as_root:
            state.on_root_owner = self._on_root_owner
        total = sum(p.size for s in sets for p in s.parts)
        reporter.set_totals(bytes_total=total, files_total=len(records) if records else None)
        reporter.phase("restoring files")
        self._extract_all(sets, destinations, state, archive_records)

        reporter.phase("checking what was restored")
        if records is not None:
            absent = sorted(set(records) - state.written - set(state.left_out))
            if absent:
                shown = ", ".join(absent[:5]) + (" ..." if len(absent) > 5 else "")
                raise IntegrityError(
                    f"{len(absent)} files recorded in pgvault.json were not in the archives: "
                    f"{shown}"
                )
            self.verified.append(
                f"{len(archive_records)} stored archives match the sizes and "
                f"{algorithm} checksums in pgvault.json"
            )
            self.verified.append(
                f"{state.files} restored files match their sizes and {algorithm} checksums"
            )
        owner = self._owner(state)
        if not self.command_checked:
            _check_runnable(self.plan.pgvault, owner[0], owner[1], True)
            self.command_checked = True
        pgdata = self.plan.recovery_dir
        control = self._check_control(pgdata, info)
        self.verified.append(control)
        self._layout(pgdata, info, destinations, state, owner)
        if pg_manifest is not None:
            self._write_manifest(pgdata, pg_manifest, owner)
        else:
            self.not_verified.append(
                "no backup_manifest in the backup: pg_verifybackup cannot check this directory"
            )
        for name, why in sorted(state.left_out.items()):
            log.info("left out %s: %s", name, why)

        reporter.phase("writing the recovery settings")
        command, credentials_file = self._recovery(pgdata, info, owner)
        if request.sync:
            reporter.phase("syncing to disk")
        self.syncer.finish()
        self._fsync_dirs(pgdata, destinations, state)
        os.replace(os.path.join(pgdata, PG_CONTROL_PENDING), os.path.join(pgdata, PG_CONTROL))
        if request.sync:
            _fsync_path(os.path.join(pgdata, "global"))
        self.warnings += config_warnings(pgdata)
        for warning in self.warnings:
            reporter.log(warning, logging.WARNING)
        reporter.phase("done")
        placed = tuple(
            (t.name, destinations[str(t.oid)].root)
            for t in info.tablespaces or ()
            if str(t.oid) in destinations
        )
        return RestoreResult(
            backup_id=info.backup_id,
            server=request.server,
            recovery_dir=pgdata,
            tablespaces=placed,
            files=state.files,
            bytes_written=state.bytes,
            bytes_downloaded=self.downloaded,
            archives=sum(len(s.parts) for s in sets),
            elapsed=time.monotonic() - self.started,
            target=request.target.describe(),
            restore_command=command,
            credentials_file=credentials_file,
            wal_restore_dir=self.plan.wal_dir,
            verified=tuple(self.verified),
            not_verified=tuple(self.not_verified),
            warnings=tuple(self.warnings),
        )

    def _on_root_owner(self, uid: int, gid: int) -> None:
        """As root: the data directory's owner is known: can it run restore_command?"""
        if uid != 0:
            _check_runnable(self.plan.pgvault, uid, gid, True)
        self.command_checked = True

    def _owner(self, state: RestoreState) -> tuple[int, int]:
        if not self.as_root:
            return os.geteuid(), os.getegid()
        if state.root_owner is not None:
            return state.root_owner
        st = os.stat(os.path.join(self.plan.recovery_dir, "PG_VERSION"))
        return st.st_uid, st.st_gid

    # ---- extraction ---------------------------------------------------------------------------

    def _units(
        self, sets: list[ArchiveSet], destinations: dict[str, Destination], parallel_parts: bool
    ) -> list[_Unit]:
        units = []
        for archive_set in sets:
            dest = destinations[archive_set.name]
            parts = [(archive_set, part, dest) for part in archive_set.parts]
            if parallel_parts:
                units += [_Unit([p]) for p in parts]
            else:
                units.append(_Unit(parts))
        return sorted(units, key=lambda u: u.size, reverse=True)

    def _extract_all(
        self,
        sets: list[ArchiveSet],
        destinations: dict[str, Destination],
        state: RestoreState,
        archive_records: dict[str, ArchiveRecord],
    ) -> None:
        # With pgvault.json each file's record names the one part whose copy wins, so parts
        # are independent; without it, the parts of one set go in order (tar's rule).
        units = self._units(sets, destinations, parallel_parts=state.records is not None)
        jobs = max(1, self.request.store_config.jobs)
        workers = max(1, min(len(units), jobs, max(2, os.cpu_count() or 1)))
        budget = _Budget(jobs)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pgvault-restore")
        futures: list[Future[None]] = []
        try:
            for unit in units:
                futures.append(pool.submit(self._unit, unit, state, archive_records, budget))
            wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f.done() and f.exception() is not None]
            if failed:
                self.abort.set()
                wait(futures)
                errors = [f.exception() for f in futures if f.exception() is not None]
                real = [e for e in errors if not isinstance(e, _Aborted | Cancelled)]
                raise (real or errors)[0]  # type: ignore[misc]
        except BaseException:
            self.abort.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        apply_directory_metadata(state)

    def _unit(
        self,
        unit: _Unit,
        state: RestoreState,
        archive_records: dict[str, ArchiveRecord],
        budget: _Budget,
    ) -> None:
        for _set, part, dest in unit.parts:
            if self.abort.is_set():
                raise _Aborted
            self._part(part, dest, state, archive_records.get(part.filename), budget)

    def _part(
        self,
        part: StoredArchive,
        dest: Destination,
        state: RestoreState,
        record: ArchiveRecord | None,
        budget: _Budget,
    ) -> None:
        label = f"{self.store.describe().rstrip('/')}/{part.key}"  # the object, named in full
        reader = self.store.open_prefetching_reader(
            part.key, size=part.size, part_size=RANGE_SIZE, jobs=budget.jobs, limit=budget.semaphore
        )
        budget.add(reader)
        algorithm = state.algorithm
        source = _StoredBytes(
            reader,
            new_checksum(algorithm) if algorithm and record is not None else None,
            self.reporter,
            self.abort,
        )
        pipe = _Pipe()
        errors: list[BaseException] = []
        parser = TarStream(Extractor(state, dest, part.filename, label))

        def write() -> None:
            try:
                while (item := pipe.get()) is not None:
                    parser.feed(item)
                parser.finish()
            except BaseException as exc:
                errors.append(exc)
                pipe.fail()

        # Decompression here, tar parsing and writes on their own thread: the codecs and
        # os.write release the GIL, so the two overlap.
        writer = threading.Thread(target=write, name="pgvault-untar", daemon=True)
        writer.start()
        failure: BaseException | None = None
        try:
            codec = part.ref.codec
            if codec is None:
                while data := source.chunk():
                    pipe.put(data)
            else:
                stream = codec.stream_reader(source, read_size=MiB)
                while data := stream.read(DECOMPRESSED_READ):
                    pipe.put(data)
            pipe.put(None)
        except BaseException as exc:
            failure = exc
            pipe.fail()
        finally:
            writer.join()
            budget.remove(reader)
            reader.close()
        if errors and not isinstance(errors[0], _Aborted):
            raise _translate(errors[0], label)
        if failure is not None:
            if isinstance(failure, ValueError):  # a damaged compressed stream
                raise IntegrityError(f"{label}: {failure}")
            raise failure
        with state.lock:
            self.downloaded += source.size
        self._check_archive(label, part, source, record)

    def _check_archive(
        self, label: str, part: StoredArchive, source: _StoredBytes, record: ArchiveRecord | None
    ) -> None:
        if source.size != part.size:
            raise IntegrityError(f"{label}: {source.size} bytes read, {part.size} listed")
        if record is None:
            return
        if record.size != source.size:
            raise IntegrityError(
                f"{label}: {source.size} bytes stored, pgvault.json records {record.size}"
            )
        digest = source.hexdigest()
        if digest != record.checksum:
            raise IntegrityError(
                f"{label}: the stored bytes' checksum {digest} does not match the "
                f"{record.checksum} recorded in pgvault.json: the archive is damaged"
            )

    # ---- after the files ---------------------------------------------------------------------

    def _check_control(self, pgdata: str, info: BackupInfo) -> str:
        path = os.path.join(pgdata, PG_CONTROL_PENDING)
        try:
            with open(path, "rb") as fh:
                control = fh.read()
        except FileNotFoundError:
            raise IntegrityError(
                f"backup {info.backup_id} holds no global/pg_control: it is not restorable"
            ) from None
        if len(control) < PG_CONTROL_CRC_OFFSET + 4:
            raise IntegrityError("the restored global/pg_control is too short")
        stored = struct.unpack_from("<I", control, PG_CONTROL_CRC_OFFSET)[0]
        if google_crc32c.value(control[:PG_CONTROL_CRC_OFFSET]) != stored:
            raise IntegrityError("the restored global/pg_control has an invalid checksum")
        sysid = str(struct.unpack_from("<Q", control, 0)[0])
        if info.systemid and str(info.systemid) != sysid:
            raise IntegrityError(
                f"the restored global/pg_control belongs to system {sysid}, backup.info "
                f"says {info.systemid}"
            )
        return f"global/pg_control is intact (CRC) and belongs to system {sysid}"

    def _layout(
        self,
        pgdata: str,
        info: BackupInfo,
        destinations: dict[str, Destination],
        state: RestoreState,
        owner: tuple[int, int],
    ) -> None:
        """An empty pg_wal, tablespace locations and their pg_tblspc links."""
        uid, gid = owner
        wal = os.path.join(pgdata, "pg_wal")
        for path in (wal, os.path.join(wal, "archive_status"), os.path.join(pgdata, "pg_tblspc")):
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
                self._own(path, owner)
        for entry in os.listdir(wal):  # only what the directory held: never its WAL
            path = os.path.join(wal, entry)
            if not os.path.isdir(path) or os.path.islink(path):
                os.unlink(path)
        for space in info.tablespaces or ():
            dest = destinations.get(str(space.oid))
            if dest is None:
                continue
            if dest.root not in state.directories:
                os.chmod(dest.root, 0o700)
                self._own(dest.root, owner)
            link = os.path.join(pgdata, "pg_tblspc", str(space.oid))
            if os.path.lexists(link):
                raise IntegrityError(f"{link} exists in the backup as something else than a link")
            os.symlink(dest.root, link)
            if self.as_root:
                os.lchown(link, uid, gid)

    def _own(self, path: str, owner: tuple[int, int]) -> None:
        if self.as_root:
            os.chown(path, owner[0], owner[1], follow_symlinks=False)

    def _write_manifest(self, pgdata: str, raw: bytes, owner: tuple[int, int]) -> None:
        try:
            check_postgres_manifest(raw)
        except PgvaultError as exc:
            self.warnings.append(f"the stored backup_manifest is not written: {exc}")
            return
        _write_file(os.path.join(pgdata, "backup_manifest"), raw, owner if self.as_root else None)
        self.verified.append(
            "backup_manifest (PostgreSQL's) written: pg_verifybackup can check the directory"
        )

    def _recovery(
        self, pgdata: str, info: BackupInfo, owner: tuple[int, int]
    ) -> tuple[str, str | None]:
        request = self.request
        credentials, drop_profile, notes = capture_credentials(
            request.location, request.store_config, request.wal_credentials
        )
        self.warnings += notes
        wal_dir = self.plan.wal_dir
        if os.path.isdir(wal_dir):
            self.emptied.append(wal_dir)
        else:
            self._make_dir(wal_dir, True)
        self._own(wal_dir, owner)
        os.chmod(wal_dir, 0o700)
        credentials_file = None
        if not credentials.is_empty():
            credentials_file = os.path.join(wal_dir, CREDENTIALS_FILE)
            self.wal_files.append(credentials_file)
            write_credentials(
                credentials_file,
                credentials,
                *(owner if self.as_root else (None, None)),
            )
        spool = None
        if request.wal_prefetch > 1:
            spool = os.path.join(wal_dir, SPOOL_DIR)
            if not os.path.isdir(spool):
                os.mkdir(spool, 0o700)
                self.wal_files.append(spool)
            self._own(spool, owner)
        argv = wal_restore_argv(
            self.plan.pgvault,
            request.location,
            request.server,
            request.store_config,
            request.wal_prefetch,
            spool,
            credentials_file,
            drop_profile,
        )
        command = command_line(argv)
        end_command = None
        if credentials_file:
            # The credentials serve recovery only: removed once the server is promoted.
            end_command = f"rm -f -- {_shell_path(credentials_file)}"
        settings = recovery_settings(
            request.target, command, request.archive_mode, end_command, info.version
        )
        text = settings_text(settings, info.backup_id, request.server)
        auto_conf = os.path.join(pgdata, "postgresql.auto.conf")
        with open(auto_conf, "a", encoding="utf-8") as fh:
            fh.write(text)
        self._own(auto_conf, owner)
        _write_file(os.path.join(pgdata, "recovery.signal"), b"", owner if self.as_root else None)
        if self.syncer is not None:
            self.syncer.add(auto_conf)
        return command, credentials_file

    def _fsync_dirs(
        self, pgdata: str, destinations: dict[str, Destination], state: RestoreState
    ) -> None:
        if not self.request.sync:
            return
        for path in sorted(state.created_dirs | {d.root for d in destinations.values()}):
            _fsync_path(path)
        for path in (self.plan.wal_dir, os.path.dirname(pgdata)):
            with contextlib.suppress(OSError):
                _fsync_path(path)

    # ---- failure ---------------------------------------------------------------------------

    def _cleanup(self, exc: BaseException) -> None:
        """Remove everything this restore wrote; keep directories that existed (emptied)."""
        self.abort.set()
        if self.syncer is not None:
            self.syncer.stop()
        for path in self.wal_files:
            with contextlib.suppress(OSError):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        for path in reversed(self.created):
            shutil.rmtree(path, ignore_errors=True)
        for path in self.emptied:
            if path == self.plan.wal_dir:
                continue
            for entry in os.listdir(path) if os.path.isdir(path) else []:
                target = os.path.join(path, entry)
                with contextlib.suppress(OSError):
                    if os.path.isdir(target) and not os.path.islink(target):
                        shutil.rmtree(target)
                    else:
                        os.unlink(target)
        if self.created or self.emptied:
            log.info("restore failed (%s): removed what it had written", type(exc).__name__)


def _translate(exc: BaseException, label: str) -> BaseException:
    if isinstance(exc, TarError):
        return IntegrityError(f"{label}: {exc}")
    return exc


def _shell_path(path: str) -> str:
    import shlex

    return shlex.quote(path)


def _write_file(path: str, data: bytes, owner: tuple[int, int] | None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if owner is not None:
            os.fchown(fd, owner[0], owner[1])
        view = memoryview(data)
        while len(view):
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def result_summary(result: RestoreResult) -> str:
    rate = result.bytes_written / result.elapsed / MiB if result.elapsed else 0.0
    return (
        f"restored backup {result.backup_id} into {result.recovery_dir}: {result.files} files, "
        f"{result.bytes_written / MiB:.1f} MiB ({result.bytes_downloaded / MiB:.1f} MiB "
        f"downloaded from {result.archives} archives) in {result.elapsed:.1f} s, "
        f"{rate:.1f} MiB/s; recovery to {result.target}"
    )


__all__ = [
    "RestoreRequest",
    "RestoreResult",
    "default_pgvault_command",
    "result_summary",
    "run_restore",
    "validate_request",
]
