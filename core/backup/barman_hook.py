"""Barman hook-script mode: upload a backup a Barman server took, as barman-cloud-backup does.

Barman runs `backup` as its post_backup_script (or post_backup_retry_script) with
BARMAN_BACKUP_DIR, BARMAN_BACKUP_ID, BARMAN_BACKUP_INFO_PATH and BARMAN_STATUS set. The
backup's `data` directory and `<oid>` tablespace directories become `data.tar` and
`<oid>.tar` sets in barman-cloud's layout, then Barman's own backup.info is stored
unchanged, last (barman-cloud's CloudBackupUploaderBarman does the same). Before it go
pgvault.json and PostgreSQL's backup_manifest (core.backup.barman_manifest), for `verify`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from core.archives import ArchiveSettings, ArchiveSetWriter, ArchiveTarget
from core.backup.barman_manifest import HookUpload, write_manifests
from core.backup.control import add_pg_control
from core.backup.request import DEFAULT_MAX_ARCHIVE_SIZE
from core.backup.result import BackupResult
from core.backup.stream import chunk_size
from core.catalog.backup_info import DONE, BackupInfo, parse
from core.catalog.layout import BACKUP_ID_RE, ServerLayout
from core.catalog.manifest import checksum_name
from core.codecs import get_codec
from core.encryption import backup_recipient
from core.errors import ExitCode, InputError, ObjectNotFound, OperationFailed, PgvaultError
from core.postgres.connection import ServerFacts
from core.postgres.control import CONTROL_FILE_SIZE, read_control
from core.postgres.pgdata import Tree, scan_pgdata, scan_tablespace
from core.progress import NullReporter, Reporter
from core.storage import ObjectStore, PutOptions, StoreConfig, open_store, validate_tags
from core.tarstream import FileAttributes
from core.urls import Location

LABEL_FILES = ("backup_label", "tablespace_map")
#: what Barman sets BARMAN_HOOK to for the hooks that may upload a finished backup
BACKUP_HOOKS = ("backup_script", "backup_retry_script")


class HookAbort(PgvaultError):
    """Barman's ABORT_STOP: the backup is not DONE, so a retry hook must not try again."""

    exit_code = ExitCode.HOOK_ABORT


@contextmanager
def retries_stop_on_bad_input(environ: Mapping[str, str]) -> Iterator[None]:
    """Barman reruns a backup_retry_script until it exits 62 or 63: bad input never gets
    better, so as a retry script it ends the retries (63) rather than looping for ever."""
    try:
        yield
    except InputError as exc:
        if environ.get("BARMAN_HOOK") == "backup_retry_script":
            raise HookAbort(f"{exc} (not retried)") from None
        raise


@dataclass(frozen=True)
class HookEnv:
    """What Barman told the hook about the backup, from its environment."""

    backup_dir: str
    backup_id: str
    info_path: str


def hook_env(environ: Mapping[str, str]) -> HookEnv | None:
    """The backup Barman hands over; None when not run as a Barman hook.

    Checked as barman-cloud-backup checks it; a backup that is not DONE raises HookAbort."""
    hook, phase = environ.get("BARMAN_HOOK"), environ.get("BARMAN_PHASE")
    if not hook:
        return None
    if hook not in BACKUP_HOOKS or phase != "post":
        raise InputError(
            f"backup called as an unsupported Barman hook script: {phase}_{hook} "
            "(use post_backup_script or post_backup_retry_script)"
        )
    missing = [
        name
        for name in ("BARMAN_BACKUP_DIR", "BARMAN_BACKUP_ID", "BARMAN_BACKUP_INFO_PATH")
        if not environ.get(name)
    ]
    if missing:
        raise InputError(f"Barman hook: environment variable {missing[0]} not set")
    status = environ.get("BARMAN_STATUS")
    if status != DONE:
        raise HookAbort(
            f"backup in {environ['BARMAN_BACKUP_DIR']} has status {status!r} "
            "(status should be: DONE); nothing uploaded"
        )
    return HookEnv(
        backup_dir=environ["BARMAN_BACKUP_DIR"],
        backup_id=environ["BARMAN_BACKUP_ID"],
        info_path=environ["BARMAN_BACKUP_INFO_PATH"],
    )


@dataclass(frozen=True)
class BarmanUploadRequest:
    """Upload one Barman backup to a destination under a server name."""

    location: Location
    server: str
    backup_dir: str
    backup_id: str
    info_path: str
    store_config: StoreConfig = field(default_factory=StoreConfig)
    compression: str | None = None
    max_archive_size: int = DEFAULT_MAX_ARCHIVE_SIZE
    checksum_algorithm: str = "crc32c"
    tags: tuple[tuple[str, str], ...] = ()


def validate_upload(request: BarmanUploadRequest) -> None:
    """Refuse (exit 3) what cannot be uploaded, before a job is recorded."""
    ServerLayout(request.server)
    get_codec(request.compression)
    checksum_name(request.checksum_algorithm)
    validate_tags(request.tags)
    if not BACKUP_ID_RE.match(request.backup_id):
        raise InputError(f"BARMAN_BACKUP_ID {request.backup_id!r} is not a Barman backup ID")
    info = read_barman_info(request)
    if info.status != DONE:
        raise HookAbort(f"{request.info_path} says status {info.status!r}, not DONE")
    refusals = (
        ("compressed", info.compression, "barman-cloud-backup refuses them too"),
        ("encrypted", info.encryption, "its files cannot be read"),
        ("incremental", info.parent_backup_id, "only full Barman backups can be uploaded"),
    )
    for what, value, why in refusals:
        if value:
            raise InputError(
                f"Barman backup {request.backup_id} is {what} ({value}): not uploaded ({why})"
            )
    data = os.path.join(request.backup_dir, "data")
    if not os.path.isfile(os.path.join(data, "global", "pg_control")):
        raise InputError(f"{data} is not a Barman backup's data directory (no global/pg_control)")


def read_barman_info(request: BarmanUploadRequest) -> BackupInfo:
    """Barman's backup.info of the backup; a missing or foreign file is bad input."""
    try:
        with open(request.info_path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InputError(
            f"cannot read BARMAN_BACKUP_INFO_PATH {request.info_path}: {exc.strerror}"
        ) from None
    try:
        info = parse(request.backup_id, raw)
    except PgvaultError as exc:
        raise InputError(f"{request.info_path}: {exc}") from None
    if info.version is None or info.systemid is None:
        raise InputError(f"{request.info_path} is not a Barman backup.info (no version, systemid)")
    return info


def upload_barman_backup(
    request: BarmanUploadRequest, reporter: Reporter | None = None
) -> BackupResult:
    """Upload the backup's archives, then its backup.info; an upload done before is kept."""
    reporter = reporter or NullReporter()
    validate_upload(request)
    info = read_barman_info(request)
    layout = ServerLayout(request.server)
    reporter.detail("backup_id", request.backup_id)
    store = open_store(request.location, request.store_config)
    store.meter = reporter.transferred
    with store:
        if _already_uploaded(store, layout, info):
            reporter.log(f"backup {request.backup_id} is already in the destination: kept")
            return _result(request, info, (), 0.0, store, layout)
        store.gate = reporter.checkpoint
        started = time.monotonic()
        upload = HookUpload(
            backup_dir=request.backup_dir,
            info=info,
            server=request.server,
            started=datetime.now().astimezone().isoformat(),
            compression=request.compression,
            algorithm=checksum_name(request.checksum_algorithm),
        )
        writers = _upload(request, info, store, layout, reporter)
        store.gate = None
        reporter.phase("writing manifests")
        write_manifests(
            upload,
            writers,
            store,
            layout,
            _options(request),
            lambda text: reporter.log(text, logging.WARNING),
        )
        reporter.phase("writing backup.info")
        with open(request.info_path, "rb") as fh:
            store.put_bytes(layout.backup_info(request.backup_id), fh.read(), _options(request))
        reporter.phase("done")
        return _result(request, info, writers, time.monotonic() - started, store, layout)


def _options(request: BarmanUploadRequest) -> PutOptions:
    return PutOptions(tags=request.tags)


def _already_uploaded(store: ObjectStore, layout: ServerLayout, info: BackupInfo) -> bool:
    """True when this backup is DONE in the destination (a retried hook); leftovers of an
    upload that failed before its backup.info are removed."""
    try:
        stored = parse(info.backup_id, store.get_bytes(layout.backup_info(info.backup_id)))
    except ObjectNotFound:
        leftovers = [o.key for o in store.list_objects(layout.backup_prefix(info.backup_id))]
        if leftovers:
            store.delete_many(leftovers)
        return False
    if (
        stored.status == DONE
        and stored.systemid == info.systemid
        and (stored.end_wal == info.end_wal)
    ):
        return True
    raise OperationFailed(
        f"backup {info.backup_id} of server {layout.server} is already in the destination "
        f"with status {stored.status} and is another backup: not overwritten; delete it first"
    )


def _facts(info: BackupInfo, data: str) -> ServerFacts:
    """What the PGDATA walk needs to know of the server, from backup.info and pg_control."""
    control, _ = read_control(data)
    return ServerFacts(
        version_num=info.version or 0,
        version_text=str(info.version),
        data_directory=data,
        wal_segment_size=info.xlog_segment_size or 16 * 1024 * 1024,
        block_size=8192,
        data_checksums=info.data_checksums,
        summarize_wal=info.summarize_wal,
        system_identifier=str(info.systemid),
        catalog_version=control.catalog_version,
        in_recovery=False,
        archive_mode="on",
        tablespaces=info.tablespaces or (),
        config_file=None,
        hba_file=None,
        ident_file=None,
    )


def _upload(
    request: BarmanUploadRequest,
    info: BackupInfo,
    store: ObjectStore,
    layout: ServerLayout,
    reporter: Reporter,
) -> list[ArchiveSetWriter]:
    """Every tablespace, then PGDATA with pg_control last; an unfinished part is aborted."""
    reporter.phase("scanning files")
    data = os.path.join(request.backup_dir, "data")
    facts = _facts(info, data)
    trees = [
        (str(t.oid), scan_tablespace(os.path.join(request.backup_dir, str(t.oid)), t.oid, facts))
        for t in facts.tablespaces
    ]
    trees.append(("data", scan_pgdata(data, facts)))
    _set_totals(reporter, [tree for _, tree in trees], data)
    reporter.phase("copying files")
    settings = ArchiveSettings(
        codec=get_codec(request.compression),
        level=None,
        threads=os.cpu_count() or 1,
        max_size=request.max_archive_size,
        chunk_size=chunk_size(store, request.max_archive_size),
        options=_options(request),
        algorithm=checksum_name(request.checksum_algorithm),
        recipient=backup_recipient(store, request.server),
    )
    target = ArchiveTarget(store, layout, request.backup_id, reporter, reporter.checkpoint)
    writers: list[ArchiveSetWriter] = []
    try:
        for name, tree in trees:
            writer = ArchiveSetWriter(target, name, settings)
            writers.append(writer)
            writer.add_tree(tree)
            if name == "data":
                add_pg_control(writer, data)
                _add_label_files(writer, data)
            writer.close()
    except BaseException:
        store.gate = None  # the cleanup must not be paused or cancelled
        for writer in writers:
            with contextlib.suppress(Exception):
                writer.abort()
        raise
    return writers


def _add_label_files(writer: ArchiveSetWriter, data: str) -> None:
    """backup_label (and tablespace_map) of Barman's copy: the PGDATA walk leaves them out
    of a live cluster, but here they are what makes the copy a backup."""
    for name in LABEL_FILES:
        path = os.path.join(data, name)
        try:
            with open(path, "rb") as fh:
                content, st = fh.read(), os.fstat(fh.fileno())
        except FileNotFoundError:
            if name == "backup_label":
                raise OperationFailed(f"{path} is missing: not a complete Barman backup") from None
            continue
        except OSError as exc:
            raise OperationFailed(f"cannot read {path}: {exc.strerror}") from None
        writer.add_bytes(name, content, FileAttributes.of(st))


def _set_totals(reporter: Reporter, trees: list[Tree], data: str) -> None:
    """The walked trees plus what is added to the data set: pg_control and the label files."""
    labels = [os.path.join(data, name) for name in LABEL_FILES]
    present = [os.path.getsize(p) for p in labels if os.path.isfile(p)]
    reporter.set_totals(
        bytes_total=sum(t.size for t in trees) + CONTROL_FILE_SIZE + sum(present),
        files_total=sum(t.files for t in trees) + 1 + len(present),
    )


def _result(
    request: BarmanUploadRequest,
    info: BackupInfo,
    writers: tuple[ArchiveSetWriter, ...] | list[ArchiveSetWriter],
    elapsed: float,
    store: ObjectStore,
    layout: ServerLayout,
) -> BackupResult:
    members = [m for w in writers for m in w.members]
    archives = tuple(a for w in writers for a in w.archives)
    try:
        stored = sum(o.size for o in store.list_objects(layout.backup_prefix(request.backup_id)))
    except PgvaultError:
        stored = sum(a.size for a in archives)
    return BackupResult(
        backup_id=request.backup_id,
        server=request.server,
        status=DONE,
        timeline=info.timeline or 1,
        begin_lsn=info.begin_xlog or "",
        end_lsn=info.end_xlog or "",
        begin_wal=info.begin_wal or "",
        end_wal=info.end_wal or "",
        files=len(members),
        bytes_read=sum(m.size for m in members),
        bytes_stored=stored,
        archives=archives,
        elapsed=elapsed,
        compression=request.compression,
        excluded={},
    )
