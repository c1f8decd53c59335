"""The physical backup pipeline: one call a command line, a job engine or the console makes.

    run_backup(BackupRequest(...), reporter) -> BackupResult

Sequence: check the destination; connect; read the server facts and prove the data
directory on this host is the server's; clean up after interrupted backups; claim a backup
ID that no other backup has (backup.info STARTED written only if absent); record what the
cluster holds; pg_backup_start; walk tablespaces and PGDATA; stream each as a tar archive
set (read, checksum, compress and upload in parallel); pg_control last; pg_backup_stop
(which waits for the WAL to be archived); backup_label into the last data part; then
backup_manifest and pgvault.json; backup.info DONE last. Any error or cancellation leaves
backup.info FAILED with the reason, no unfinished upload, and PostgreSQL out of backup mode.

Room for later issues: BackupRequest grows a parent (incremental) and an encryption stage
sits between compression and the object writer in ArchiveSetWriter; pgvault.json already
records `parent_backup_id` and `encryption`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from core import __version__
from core.archives import ArchiveSetWriter, Member
from core.backup_info import DONE, FAILED, STARTED, BackupInfo, parse, serialize
from core.backup_resume import (
    PartCheckpoint,
    ResumePlan,
    delete_checkpoints,
    plan_resume,
    resumable_manifest,
    write_checkpoint,
)
from core.codecs import get_codec
from core.errors import (
    Cancelled,
    ObjectExists,
    OperationFailed,
    PgvaultError,
)
from core.layout import PG_MANIFEST, PGVAULT_MANIFEST, ServerLayout, validate_backup_name
from core.manifest import (
    ArchiveRecord,
    DatabaseRecord,
    FileRecord,
    PgvaultManifest,
    TableRecord,
    WalRange,
    checksum_name,
    dump_pgvault,
    load_pgvault,
    postgres_manifest,
)
from core.postgres.connection import (
    BackupSession,
    BackupStart,
    BackupStop,
    ConnectionParams,
    ServerFacts,
    Session,
    read_facts,
)
from core.postgres.control import parse_control, read_control
from core.postgres.inventory import inventory
from core.postgres.pgdata import (
    PG_CONTROL,
    Tree,
    scan_pgdata,
    scan_tablespace,
    wal_archive_busy,
)
from core.postgres.walnames import format_lsn, parse_history, segment_of_lsn
from core.progress import NullReporter, Reporter
from core.storage import ObjectStore, PutOptions, StoreConfig, open_store, validate_tags
from core.urls import Location

log = logging.getLogger("pgvault.backup")

GiB = 1024**3
MiB = 1024**2
DEFAULT_MAX_ARCHIVE_SIZE = 100 * GiB
MAX_ARCHIVE_SIZE = 1024 * GiB  # barman-cloud's cap
PG_CONTROL_SIZE = 8192
ID_ATTEMPTS = 120


@dataclass(frozen=True)
class BackupRequest:
    """Everything a backup needs; built by the command line or a job definition."""

    location: Location
    server: str
    store_config: StoreConfig = field(default_factory=StoreConfig)
    connection: ConnectionParams = field(default_factory=ConnectionParams)
    compression: str | None = None  # gzip, bzip2, snappy, lz4, zstd or None
    compression_level: int | None = None  # None: the codec's default
    name: str | None = None
    max_archive_size: int = DEFAULT_MAX_ARCHIVE_SIZE
    immediate_checkpoint: bool = False
    keepalive_interval: float = 60.0
    checksum_algorithm: str = "crc32c"
    tags: tuple[tuple[str, str], ...] = ()
    threads: int = 0  # compression threads; 0: one per core
    resume: str | None = None  # a FAILED backup of this server to continue (backup_resume)


@dataclass(frozen=True)
class BackupResult:
    """What a finished backup reports."""

    backup_id: str
    server: str
    status: str
    timeline: int
    begin_lsn: str
    end_lsn: str
    begin_wal: str
    end_wal: str
    files: int
    bytes_read: int
    bytes_stored: int
    archives: tuple[ArchiveRecord, ...]
    elapsed: float
    compression: str | None
    excluded: dict[str, int]


def run_backup(request: BackupRequest, reporter: Reporter | None = None) -> BackupResult:
    """Take one physical backup; raises a PgvaultError subclass when it cannot."""
    reporter = reporter or NullReporter()
    validate_request(request)
    store = open_store(request.location, request.store_config)
    store.meter = reporter.transferred
    with store:
        return _Pipeline(request, reporter, store).run()


def validate_request(request: BackupRequest) -> None:
    """Reject bad input (exit 3) before anything is recorded or started."""
    ServerLayout(request.server)
    if request.name is not None:
        validate_backup_name(request.name)
    get_codec(request.compression)
    checksum_name(request.checksum_algorithm)
    validate_tags(request.tags)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---- the lease: who is running a backup, to clean up after one that died -------------------


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """The start time of a live process (clock ticks since boot); None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            raw = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return ""  # unknown: treated as alive
    fields = raw.rsplit(")", 1)[-1].split()
    if fields[0] in ("Z", "X"):  # a zombie has finished running
        return None
    return fields[19]


def _lease() -> dict[str, object]:
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid": pid,
        "pid_start": _process_start(pid) or "",
    }


def _lease_is_dead(lease: dict[str, object]) -> bool:
    """True only when the lease was taken on this host by a process that no longer runs."""
    if lease.get("host") != socket.gethostname():
        return False
    if lease.get("boot_id") and lease.get("boot_id") != _boot_id():
        return True
    pid = lease.get("pid")
    if not isinstance(pid, int):
        return False
    started = _process_start(pid)
    return started is None or (bool(started) and started != lease.get("pid_start"))


lease_is_dead = _lease_is_dead  # public name: retention tells dead STARTED backups apart


def reap_interrupted(store: ObjectStore, server: str) -> list[str]:
    """Clean up after backups whose process died (SIGKILL, OOM, power loss).

    Unfinished uploads of DONE or FAILED backups are aborted. A STARTED pgvault backup whose
    lease names this host and a process that no longer runs is marked FAILED and its uploads
    aborted. Anything else (another host's backup, a barman-cloud backup still STARTED) is
    left alone. Returns the IDs of the backups cleaned up.
    """
    layout = ServerLayout(server)
    pending = store.list_pending_uploads(layout.base_prefix)
    by_backup: dict[str, int] = {}
    for upload in pending:
        backup_id = layout.backup_id_of(upload.key)
        if backup_id:
            by_backup[backup_id] = by_backup.get(backup_id, 0) + 1
    reaped = []
    for backup_id, uploads in sorted(by_backup.items()):
        try:
            info = parse(backup_id, store.get_bytes(layout.backup_info(backup_id)))
        except PgvaultError:
            continue
        if info.status == STARTED:
            try:
                manifest = load_pgvault(
                    store.get_bytes(layout.backup_file(backup_id, PGVAULT_MANIFEST))
                )
            except PgvaultError:
                continue
            if manifest.state != "running" or not _lease_is_dead(manifest.lease or {}):
                continue
            reason = "failure copying data (the pgvault process ended before the backup finished)"
            store.put_bytes(
                layout.backup_info(backup_id),
                serialize(info.with_changes(status=FAILED, error=reason)),
            )
            store.put_bytes(
                layout.backup_file(backup_id, PGVAULT_MANIFEST),
                dump_pgvault(replace(manifest, state="failed", error=reason)),
            )
        elif info.status not in (DONE, FAILED):
            continue
        store.abort_pending_uploads(layout.backup_prefix(backup_id))
        log.warning("cleaned up after interrupted backup %s (%d uploads)", backup_id, uploads)
        reaped.append(backup_id)
    return reaped


# ---- helpers -----------------------------------------------------------------------------------


def _read_pg_control(pgdata: str) -> tuple[bytes, os.stat_result]:
    """global/pg_control with a valid CRC (it is rewritten in place: re-read a torn copy)."""
    control, st = read_control(pgdata)
    return control.raw, st


def _system_identifier(control: bytes) -> str:
    return str(parse_control(control).system_identifier)


def _label_timeline(label: str, default: int) -> int:
    for line in label.splitlines():
        if line.startswith("START TIMELINE:"):
            return int(line.split(":", 1)[1])
    return default


def _wal_ranges(
    pgdata: str, start_tli: int, start_lsn: int, end_tli: int, end_lsn: int
) -> list[WalRange]:
    """WAL-Ranges as PostgreSQL computes them: newest timeline first."""
    if start_tli == end_tli:
        return [WalRange(end_tli, start_lsn, end_lsn)]
    path = os.path.join(pgdata, "pg_wal", f"{end_tli:08X}.history")
    try:
        with open(path) as fh:
            history = parse_history(fh.read())
    except OSError as exc:
        raise OperationFailed(f"cannot read {path} to span timelines: {exc.strerror}") from None
    ranges = []
    upper = end_lsn
    tli = end_tli
    for entry in reversed(history):
        if entry.parent_timeline < start_tli:
            break
        ranges.append(WalRange(tli, entry.switch_lsn, upper))
        upper, tli = entry.switch_lsn, entry.parent_timeline
    ranges.append(WalRange(start_tli, start_lsn, upper))
    return ranges


def _chunk_size(store: ObjectStore, max_archive_size: int) -> int:
    """Parts large enough for an archive of -S plus one 1 GiB file within the part limit."""
    needed = -(-(max_archive_size + GiB) // (store.max_parts - 1))
    needed = -(-needed // MiB) * MiB
    return max(store.chunk_size, needed)


def _external_config(facts: ServerFacts, pgdata: str) -> list[tuple[str, str, bool]]:
    """Config files outside PGDATA, added to the data archive's root as barman-cloud does."""
    root = os.path.realpath(pgdata) + os.sep
    found = []
    for kind, path in (
        ("config_file", facts.config_file),
        ("hba_file", facts.hba_file),
        ("ident_file", facts.ident_file),
    ):
        if path and not os.path.realpath(path).startswith(root):
            found.append((kind, path, kind == "ident_file"))
    outside = [p for p in facts.included_files if not os.path.realpath(p).startswith(root)]
    if outside:
        log.warning(
            "configuration files included from outside PGDATA are not backed up; copy them "
            "yourself: %s",
            ", ".join(outside),
        )
    return found


# ---- the pipeline ------------------------------------------------------------------------------


class _Pipeline:
    def __init__(self, request: BackupRequest, reporter: Reporter, store: ObjectStore) -> None:
        self.request = request
        self.reporter = reporter
        self.store = store
        self.layout = ServerLayout(request.server)
        self.codec = get_codec(request.compression)
        self.algorithm = checksum_name(request.checksum_algorithm)
        self.options = PutOptions(tags=request.tags)
        self.threads = request.threads or os.cpu_count() or 1
        self.session: Session | None = None
        self.backup: BackupSession | None = None
        self.backup_id = ""
        self.info: BackupInfo | None = None
        self.manifest: PgvaultManifest | None = None
        self.writers: list[ArchiveSetWriter] = []
        self.resume_plan: ResumePlan | None = None
        self.phase = "connecting"
        self.started_at = time.monotonic()

    # ---- control --------------------------------------------------------------------------

    def checkpoint(self) -> None:
        self.reporter.checkpoint()
        if self.backup is not None:
            self.backup.raise_if_lost()

    def _phase(self, name: str) -> None:
        self.phase = name
        self.reporter.phase(name)

    # ---- run -------------------------------------------------------------------------------

    def run(self) -> BackupResult:
        self._phase("connecting")
        self.store.check()
        self.session = Session(
            self.request.connection, "pgvault backup", checkpoint=self.reporter.checkpoint
        )
        try:
            facts = read_facts(self.session)
            self._check_data_directory(facts)
            try:
                reap_interrupted(self.store, self.request.server)
            except Exception as exc:  # cleaning up after others never stops a backup
                self.reporter.log(f"could not clean up interrupted backups: {exc}", logging.WARNING)
            self._claim(facts)
        except BaseException:
            self.session.close()
            raise
        try:
            return self._run(facts)
        except BaseException as exc:
            self._fail(exc)
            raise AssertionError("unreachable") from exc  # _fail always raises

    def _check_data_directory(self, facts: ServerFacts) -> tuple[bytes, os.stat_result]:
        """The data directory must be on this host and belong to the server we talk to."""
        pgdata = facts.data_directory
        if not os.path.isdir(pgdata):
            raise OperationFailed(
                f"the data directory {pgdata} is not on this host: run pgvault where "
                "PostgreSQL's data directory and tablespaces can be read"
            )
        control, st = _read_pg_control(pgdata)
        on_disk = _system_identifier(control)
        if on_disk != facts.system_identifier:
            raise OperationFailed(
                f"{pgdata} belongs to another cluster (system identifier {on_disk}, the "
                f"server says {facts.system_identifier}): run pgvault on the database host"
            )
        return control, st

    def _claim(self, facts: ServerFacts) -> None:
        """Pick a backup ID nobody else has: backup.info STARTED written only if absent."""
        if self.request.resume:
            self._reclaim(facts, self.request.resume)
            return
        self._phase("claiming a backup ID")
        when = datetime.now().replace(microsecond=0)
        for _ in range(ID_ATTEMPTS):
            candidate = when.strftime("%Y%m%dT%H%M%S")
            when += timedelta(seconds=1)
            prefix = self.layout.backup_prefix(candidate)
            if next(iter(self.store.list_objects(prefix)), None) is not None:
                continue
            info = self._base_info(candidate, facts)
            try:
                self.store.put_bytes(
                    self.layout.backup_info(candidate),
                    serialize(info),
                    replace(self.options, if_absent=True),
                )
            except ObjectExists:
                continue
            self.backup_id = candidate
            self.info = info
            break
        else:
            raise OperationFailed(f"no free backup ID found for server {self.request.server}")
        self._claimed(facts)

    def _reclaim(self, facts: ServerFacts, backup_id: str) -> None:
        """Take over a FAILED backup's ID to continue it (see core.backup_resume)."""
        self._phase("resuming a failed backup")
        resumable_manifest(
            self.store,
            self.layout,
            backup_id,
            facts.system_identifier,
            self.codec.name if self.codec else None,
            self.algorithm,
            (t.oid for t in facts.tablespaces),
            _lease_is_dead,
        )
        self.backup_id = backup_id
        self.info = self._base_info(backup_id, facts)
        self.store.put_bytes(self.layout.backup_info(backup_id), serialize(self.info), self.options)
        self.resume_plan = ResumePlan(backup_id)
        self._claimed(facts)

    def _claimed(self, facts: ServerFacts) -> None:
        self.reporter.detail("backup_id", self.backup_id)
        self.store.gate = self.checkpoint
        self.manifest = PgvaultManifest(
            backup_id=self.backup_id,
            server=self.request.server,
            state="running",
            pgvault_version=__version__,
            started=datetime.now().astimezone().isoformat(),
            lease=_lease(),
            compression=self.codec.name if self.codec else None,
            compression_level=self.codec.clamp(self.request.compression_level)
            if self.codec
            else None,
            checksum_algorithm=self.algorithm,
            tablespaces=[
                {"name": t.name, "oid": t.oid, "location": t.location} for t in facts.tablespaces
            ],
            postgres={
                "version": facts.version_num,
                "version_text": facts.version_text,
                "system_identifier": facts.system_identifier,
                "segment_size": facts.wal_segment_size,
                "block_size": facts.block_size,
                "data_checksums": facts.data_checksums,
                "in_recovery": facts.in_recovery,
            },
        )
        log.info("backup %s of server %s started", self.backup_id, self.request.server)

    def _base_info(self, backup_id: str, facts: ServerFacts) -> BackupInfo:
        return BackupInfo(
            backup_id=backup_id,
            status=STARTED,
            backup_name=self.request.name,
            server_name=self.request.server,
            systemid=facts.system_identifier,
            version=facts.version_num,
            pgdata=facts.data_directory,
            tablespaces=facts.tablespaces or None,
            xlog_segment_size=facts.wal_segment_size,
            data_checksums=facts.data_checksums,
            summarize_wal=facts.summarize_wal,
            cluster_size=facts.cluster_size,
            config_file=facts.config_file,
            hba_file=facts.hba_file,
            ident_file=facts.ident_file,
            included_files=list(facts.included_files) or None,
            compression=self.codec.name if self.codec else None,
        )

    def _run(self, facts: ServerFacts) -> BackupResult:
        assert self.session is not None and self.info is not None
        assert self.manifest is not None
        self._put_manifest()
        session = self.session
        session.query(
            "SELECT set_config('application_name', %s, false)",
            (f"pgvault backup {self.backup_id}",),
        )
        if facts.archive_mode == "off":
            self.reporter.log(
                "WAL archiving is off on this server: the backup can only be restored with "
                "the WAL from its start to its end, which you must keep yourself",
                logging.WARNING,
            )
        self._phase("recording databases and tables")
        databases, tables = self._inventory()
        self.manifest = replace(self.manifest, databases=databases, tables=tables)

        self._phase("starting the backup")
        self.backup = BackupSession(session, facts.version_num, self.request.keepalive_interval)
        label = f"pgvault backup {self.request.server} {self.backup_id}"
        start = self.backup.start(label, self.request.immediate_checkpoint)
        self.info = self._with_start(self.info, start, facts)
        self.store.put_bytes(
            self.layout.backup_info(self.backup_id), serialize(self.info), self.options
        )

        self._phase("scanning files")
        pgdata = facts.data_directory
        trees = [scan_tablespace(t.location, t.oid, facts) for t in facts.tablespaces]
        data_tree = scan_pgdata(pgdata, facts)
        external = _external_config(facts, pgdata)
        total = sum(t.size for t in [*trees, data_tree]) + PG_CONTROL_SIZE
        for _, path, _ in external:
            with contextlib.suppress(OSError):
                total += os.stat(path).st_size
        files = sum(t.files for t in [*trees, data_tree]) + 2 + len(external)
        self.reporter.set_totals(bytes_total=total, files_total=files)
        if self.resume_plan is not None:
            trees, data_tree = self._plan_resume(facts, trees, data_tree)
            # Progress counts this run's work: what the kept parts hold is not done again.
            total -= self.resume_plan.reused_bytes
            files -= len(self.resume_plan.files)
            self.reporter.set_totals(bytes_total=total, files_total=files)

        self._phase("copying files")
        copy_started = time.monotonic()
        chunk = _chunk_size(self.store, self.request.max_archive_size)
        for tablespace, tree in zip(facts.tablespaces, trees, strict=True):
            writer = self._writer(str(tablespace.oid), chunk)
            writer.add_tree(tree)
            writer.close()
            tree.entries = []  # streamed: only the members' records are kept from here
        data = self._writer("data", chunk)
        data.add_tree(data_tree)
        data_tree.entries = []
        control, control_stat = _read_pg_control(pgdata)
        data.add_bytes(
            PG_CONTROL,
            control,
            PG_CONTROL,
            control_stat.st_mode & 0o7777,
            control_stat.st_uid,
            control_stat.st_gid,
            control_stat.st_mtime,
        )
        for kind, path, optional in external:
            self._add_external(data, kind, path, optional)

        self._phase("stopping the backup")
        # PostgreSQL's own wait for archiving polls once a second; pgvault reads the same
        # archive status files itself, every few milliseconds, when it can read them.
        status_dir = os.path.join(pgdata, "pg_wal", "archive_status")
        watch = os.access(status_dir, os.R_OK | os.X_OK)
        stop = self.backup.stop(wait_for_archive=not watch)
        if watch:
            self._wait_for_archiving(facts, start, stop)
        if not facts.in_recovery:
            self._after_stop(self.backup)
        self._phase("finishing the upload")
        root = os.stat(pgdata)
        label_bytes = stop.labelfile.encode("utf-8")
        self.reporter.set_totals(bytes_total=total + len(label_bytes))
        data.add_bytes(
            "backup_label",
            label_bytes,
            "backup_label",
            0o600,
            root.st_uid,
            root.st_gid,
            stop.time.timestamp(),
            rollover=False,  # with pg_control, in the last part, as barman-cloud has it
        )
        data.close()
        copy_time = time.monotonic() - copy_started
        self.backup.close()

        self._phase("writing manifests")
        records = self._file_records()
        kept_archives: tuple[ArchiveRecord, ...] = ()
        if self.resume_plan is not None:
            kept_archives = tuple(self.resume_plan.archives)
            records = {
                **{f.path: f for f in self.resume_plan.files},
                **records,
            }
        start_tli = _label_timeline(stop.labelfile, start.timeline)
        ranges = _wal_ranges(pgdata, start_tli, start.lsn, stop.timeline, stop.lsn)
        manifest_bytes = postgres_manifest(
            records.values(), ranges, self.algorithm, facts.version_num, facts.system_identifier
        )
        self.store.put_bytes(
            self.layout.backup_file(self.backup_id, PG_MANIFEST), manifest_bytes, self.options
        )
        archives = kept_archives + tuple(a for w in self.writers for a in w.archives)
        excluded: dict[str, int] = {}
        for tree in [*trees, data_tree]:
            for reason, count in tree.excluded.items():
                excluded[reason] = excluded.get(reason, 0) + count
        excluded.pop("pg_control", None)
        assert self.manifest is not None
        self.manifest = replace(
            self.manifest,
            state="done",
            finished=datetime.now().astimezone().isoformat(),
            lease=None,
            tablespace_map=stop.spcmapfile,
            archives=archives,
            files=tuple(records.values()),
            excluded=excluded,
            postgres={
                **self.manifest.postgres,
                "timeline": stop.timeline,
                "start_lsn": format_lsn(start.lsn),
                "end_lsn": format_lsn(stop.lsn),
                "wal_ranges": [
                    {
                        "timeline": r.timeline,
                        "start": format_lsn(r.start_lsn),
                        "end": format_lsn(r.end_lsn),
                    }
                    for r in ranges
                ],
            },
        )
        self._put_manifest()

        elapsed = time.monotonic() - self.started_at
        self.info = self._with_stop(self.info, stop, facts).with_changes(
            status=DONE,
            copy_stats={
                "total_time": round(elapsed, 6),
                "number_of_workers": self.request.store_config.jobs,
                "copy_time": round(copy_time, 6),
            },
        )
        self.store.put_bytes(
            self.layout.backup_info(self.backup_id), serialize(self.info), self.options
        )
        with contextlib.suppress(PgvaultError):  # leftovers are harmless; DONE is what counts
            delete_checkpoints(self.store, self.layout, self.backup_id)
        self._phase("done")
        assert self.info.begin_xlog and self.info.end_xlog
        return BackupResult(
            backup_id=self.backup_id,
            server=self.request.server,
            status=DONE,
            timeline=stop.timeline,
            begin_lsn=self.info.begin_xlog,
            end_lsn=self.info.end_xlog,
            begin_wal=self.info.begin_wal or "",
            end_wal=self.info.end_wal or "",
            files=len(records),
            bytes_read=sum(r.size for r in records.values()),
            bytes_stored=sum(a.size for a in archives),
            archives=archives,
            elapsed=elapsed,
            compression=self.codec.name if self.codec else None,
            excluded=excluded,
        )

    # ---- pieces --------------------------------------------------------------------------------

    def _wait_for_archiving(self, facts: ServerFacts, start: BackupStart, stop: BackupStop) -> None:
        """Wait, as pg_backup_stop(true) would, until the backup's last segment and its
        .backup history file are archived."""
        archiving = facts.archive_mode == "always" or (
            facts.archive_mode == "on" and not facts.in_recovery
        )
        if not archiving:
            return
        size = facts.wal_segment_size
        last = segment_of_lsn(stop.timeline, stop.lsn - 1, size)
        history = f"{segment_of_lsn(stop.timeline, start.lsn, size)}.{start.lsn % size:08X}.backup"
        pgdata = facts.data_directory
        started = time.monotonic()
        warned = 0.0
        delay = 0.005
        while any(wal_archive_busy(pgdata, name) for name in (last, history)):
            self.checkpoint()
            waited = time.monotonic() - started
            if waited - warned >= 60:
                warned = waited
                self.reporter.log(
                    f"still waiting for {last} to be archived ({waited:.0f} s): check "
                    "archive_command and the server log",
                    logging.WARNING,
                )
            time.sleep(delay)
            delay = min(0.2, delay * 2)

    def _after_stop(self, backup: BackupSession) -> None:
        """As barman-cloud: switch WAL and create the restore point barman_<ID> (primary only)."""
        try:
            backup.switch_wal()
            backup.restore_point(f"barman_{self.backup_id}")
        except PgvaultError as exc:
            if isinstance(exc, Cancelled):
                raise
            self.reporter.log(str(exc), logging.WARNING)

    def _inventory(self) -> tuple[tuple[DatabaseRecord, ...], tuple[TableRecord, ...]]:
        assert self.session is not None
        try:
            return inventory(
                self.session, self.request.connection, f"pgvault backup {self.backup_id}"
            )
        except PgvaultError as exc:
            if isinstance(exc, Cancelled):
                raise
            self.reporter.log(f"databases and tables not recorded: {exc}", logging.WARNING)
            return (), ()

    def _plan_resume(
        self, facts: ServerFacts, trees: list[Tree], data_tree: Tree
    ) -> tuple[list[Tree], Tree]:
        """Keep what the failed run stored of files unchanged since; the trees left to copy."""
        assert self.resume_plan is not None
        self._phase("checking what the failed backup stored")
        by_name = {str(t.oid): tree for t, tree in zip(facts.tablespaces, trees, strict=True)}
        by_name["data"] = data_tree
        plan = plan_resume(
            self.store,
            self.layout,
            self.backup_id,
            by_name,
            self.algorithm,
            self.checkpoint,
            self.reporter.log,
        )
        self.resume_plan = plan
        self.reporter.detail("reused_bytes", plan.reused_bytes)
        self.reporter.detail("reused_stored_bytes", plan.reused_stored)
        self.reporter.log(
            f"resuming backup {self.backup_id}: {len(plan.archives)} stored parts kept "
            f"({len(plan.files)} files, {plan.reused_stored} bytes not sent again)"
        )
        return [plan.remaining(t) for t in trees], plan.remaining(data_tree)

    def _checkpoint_part(self, record: ArchiveRecord, members: list[Member]) -> None:
        """A stored part, recorded so that a resumed run can keep it."""
        write_checkpoint(
            self.store,
            self.layout,
            self.backup_id,
            PartCheckpoint(record, tuple(m.record() for m in members)),
            self.options,
        )

    def _writer(self, name: str, chunk: int) -> ArchiveSetWriter:
        writer = ArchiveSetWriter(
            store=self.store,
            layout=self.layout,
            backup_id=self.backup_id,
            name=name,
            codec=self.codec,
            level=self.request.compression_level,
            threads=self.threads,
            max_size=self.request.max_archive_size,
            chunk_size=chunk,
            options=self.options,
            algorithm=self.algorithm,
            reporter=self.reporter,
            checkpoint=self.checkpoint,
            first_part=self.resume_plan.next_part(name) if self.resume_plan else 0,
            on_part=self._checkpoint_part,
        )
        self.writers.append(writer)
        return writer

    def _add_external(self, data: ArchiveSetWriter, kind: str, path: str, optional: bool) -> None:
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                content = fh.read()
        except FileNotFoundError:
            if optional:
                return
            raise OperationFailed(f"{kind} {path} does not exist") from None
        except OSError as exc:
            raise OperationFailed(f"cannot read {kind} {path}: {exc.strerror}") from None
        name = os.path.basename(path)
        data.add_bytes(name, content, name, st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime)

    def _file_records(self) -> dict[str, FileRecord]:
        """Every file as restored; a later member with the same path wins, as in tar."""
        records: dict[str, FileRecord] = {}
        for writer in self.writers:
            for member in writer.members:
                records.pop(member.manifest_path, None)
                records[member.manifest_path] = member.record()
        return records

    def _with_start(self, info: BackupInfo, start: BackupStart, facts: ServerFacts) -> BackupInfo:
        size = facts.wal_segment_size
        return info.with_changes(
            timeline=start.timeline,
            begin_time=start.time,
            begin_xlog=format_lsn(start.lsn),
            begin_wal=segment_of_lsn(start.timeline, start.lsn, size),
            begin_offset=start.lsn % size,
        )

    def _with_stop(self, info: BackupInfo, stop: BackupStop, facts: ServerFacts) -> BackupInfo:
        size = facts.wal_segment_size
        return info.with_changes(
            backup_label=stop.labelfile,
            end_time=stop.time,
            end_xlog=format_lsn(stop.lsn),
            end_wal=segment_of_lsn(stop.timeline, stop.lsn, size),
            end_offset=stop.lsn % size,
        )

    def _put_manifest(self) -> None:
        assert self.manifest is not None
        self.store.put_bytes(
            self.layout.backup_file(self.backup_id, PGVAULT_MANIFEST),
            dump_pgvault(self.manifest),
            self.options,
        )

    # ---- failure --------------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        """Leave FAILED with the reason, no unfinished upload, PostgreSQL out of backup mode."""
        self.store.gate = None  # cleanup must not be paused or cancelled
        reason = f"failure {self.phase} ({_first_line(exc)})"
        for writer in self.writers:
            with contextlib.suppress(Exception):
                writer.abort()
        if self.backup is not None:
            self.backup.close()
        if self.session is not None:
            self.session.close()
        self._cleanup_after(reason)
        log.error("backup %s failed: %s", self.backup_id, reason)
        if not isinstance(exc, Exception):
            raise exc  # KeyboardInterrupt, SystemExit: after cleanup
        message = f"backup {self.backup_id} of server {self.request.server} failed: {reason}"
        error = Cancelled(message) if isinstance(exc, Cancelled) else OperationFailed(message)
        raise error from exc

    def _cleanup_after(self, reason: str) -> None:
        steps: list[tuple[str, Callable[[], object]]] = []
        if self.info is not None:
            failed = self.info.with_changes(status=FAILED, error=reason)
            steps.append(
                (
                    "mark the backup FAILED",
                    lambda: self.store.put_bytes(
                        self.layout.backup_info(self.backup_id), serialize(failed), self.options
                    ),
                )
            )
        if self.manifest is not None:
            self.manifest = replace(self.manifest, state="failed", error=reason, lease=None)
            steps.append(("update pgvault.json", self._put_manifest))
        steps.append(
            (
                "abort unfinished uploads",
                lambda: self.store.abort_pending_uploads(self.layout.backup_prefix(self.backup_id)),
            )
        )
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # keep cleaning up; report what could not be done
                log.error("could not %s of backup %s: %s", what, self.backup_id, exc)


def result_summary(result: BackupResult) -> str:
    """One line for operators: ID, size read and stored, rate, time."""
    rate = result.bytes_read / result.elapsed / MiB if result.elapsed else 0.0
    return (
        f"backup {result.backup_id}: {result.files} files, "
        f"{result.bytes_read / MiB:.1f} MiB read, {result.bytes_stored / MiB:.1f} MiB stored"
        f" ({result.compression or 'no compression'}), {result.elapsed:.1f} s, "
        f"{rate:.1f} MiB/s, WAL {result.begin_wal}..{result.end_wal}"
    )


__all__ = [
    "BackupRequest",
    "BackupResult",
    "lease_is_dead",
    "reap_interrupted",
    "result_summary",
    "run_backup",
]
