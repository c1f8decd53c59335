"""The phases after the files: pg_control checked, the layout PostgreSQL expects, PostgreSQL's
backup_manifest, then (after the recovery settings) fsync and global/pg_control put in place
last, so that a restore that dies before the end leaves a directory PostgreSQL refuses.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

from core.catalog.manifest import check_postgres_manifest, postgres_manifest
from core.errors import IntegrityError, PgvaultError
from core.postgres.control import check_restored_control
from core.restore.chain_manifest import chain_manifest
from core.restore.extract import PG_CONTROL, PG_CONTROL_PENDING, fsync_path, write_file
from core.restore.recovery import config_warnings
from core.restore.request import RestoreResult
from core.restore.rerun import remove_marker
from core.restore.state import RestoreRun
from core.restore.streams import Aborted

log = logging.getLogger("pgvault.restore")


def check_pg_control(run: RestoreRun) -> None:
    """The phase: the restored pg_control is intact and belongs to the backup's system."""
    info = run.plan.info
    path = os.path.join(run.pgdata, PG_CONTROL_PENDING)
    expected = str(info.systemid) if info.systemid else ""
    sysid = check_restored_control(path, info.backup_id, expected).system_identifier
    run.verified.append(f"global/pg_control is intact (CRC) and belongs to system {sysid}")


def lay_out(run: RestoreRun) -> None:
    """The phase: an empty pg_wal, tablespace locations and their pg_tblspc links."""
    pgdata = run.pgdata
    wal = os.path.join(pgdata, "pg_wal")
    for path in (wal, os.path.join(wal, "archive_status"), os.path.join(pgdata, "pg_tblspc")):
        if not os.path.isdir(path):
            os.mkdir(path, 0o700)
            run.own(path)
    for entry in os.listdir(wal):  # only what the directory held: never its WAL
        path = os.path.join(wal, entry)
        if not os.path.isdir(path) or os.path.islink(path):
            os.unlink(path)
    for space in run.plan.info.tablespaces or ():
        dest = run.plan.destinations.get(str(space.oid))
        if dest is None:
            continue
        if dest.root not in run.files.directories:
            os.chmod(dest.root, 0o700)
            run.own(dest.root)
        link = os.path.join(pgdata, "pg_tblspc", str(space.oid))
        if os.path.lexists(link):
            raise IntegrityError(f"{link} exists in the backup as something else than a link")
        os.symlink(dest.root, link)
        if run.as_root:
            os.lchown(link, *run.owner)


def write_backup_manifest(run: RestoreRun) -> None:
    """The phase: PostgreSQL's backup_manifest, for pg_verifybackup, when the backup has one."""
    raw = run.plan.pg_manifest
    if run.plan.chain:
        _write_chain_manifest(run)
    elif raw is None:
        run.not_verified.append(
            "no backup_manifest in the backup: pg_verifybackup cannot check this directory"
        )
    else:
        _write_manifest(run, raw)
    for name, why in sorted(run.files.left_out.items()):
        log.info("left out %s: %s", name, why)


def _write_chain_manifest(run: RestoreRun) -> None:
    """A chain's stored manifests list what each link stores: one for the directory built."""
    run.reporter.phase("checksumming the files assembled from the chain")

    def checkpoint(_read: int) -> None:
        if run.abort.is_set():
            raise Aborted

    written = run.chain_written.checksums if run.chain_written else None
    built = chain_manifest(
        run.plan.chain, run.plan.destinations, set(run.files.left_out), checkpoint, written
    )
    raw = postgres_manifest(
        built.files, built.wal_ranges, built.algorithm, built.version, built.system_identifier
    )
    write_file(os.path.join(run.pgdata, "backup_manifest"), raw, run.file_owner)
    run.verified.append(
        f"backup_manifest (PostgreSQL's) written for the reconstructed directory: "
        f"{len(built.files)} files, of which {built.joined} assembled from the chain's blocks "
        f"checksummed as they were written and {built.read_back} read back and checksummed "
        f"({built.algorithm}); pg_verifybackup can check the directory"
    )


def _write_manifest(run: RestoreRun, raw: bytes) -> None:
    try:
        check_postgres_manifest(raw)
    except PgvaultError as exc:
        run.warnings.append(f"the stored backup_manifest is not written: {exc}")
        return
    write_file(os.path.join(run.pgdata, "backup_manifest"), raw, run.file_owner)
    run.verified.append(
        "backup_manifest (PostgreSQL's) written: pg_verifybackup can check the directory"
    )


def seal(run: RestoreRun) -> None:
    """The phase: everything on disk, then global/pg_control put in place last."""
    pgdata = run.pgdata
    if run.request.sync:
        run.reporter.phase("syncing to disk")
    run.syncer.finish()
    _fsync_dirs(run)
    remove_marker(pgdata)
    os.replace(os.path.join(pgdata, PG_CONTROL_PENDING), os.path.join(pgdata, PG_CONTROL))
    if run.request.sync:
        fsync_path(os.path.join(pgdata, "global"))
    run.warnings += config_warnings(pgdata)
    for warning in run.warnings:
        run.reporter.log(warning, logging.WARNING)
    run.reporter.phase("done")


def _fsync_dirs(run: RestoreRun) -> None:
    if not run.request.sync:
        return
    roots = {d.root for d in run.plan.destinations.values()}
    for path in sorted(run.files.created_dirs | roots):
        fsync_path(path)
    for path in (run.paths.wal_dir, os.path.dirname(run.pgdata)):
        with contextlib.suppress(OSError):
            fsync_path(path)


def restore_result(run: RestoreRun) -> RestoreResult:
    info = run.plan.info
    destinations = run.plan.destinations
    placed = tuple(
        (t.name, destinations[str(t.oid)].root)
        for t in info.tablespaces or ()
        if str(t.oid) in destinations
    )
    return RestoreResult(
        backup_id=info.backup_id,
        server=run.request.server,
        recovery_dir=run.pgdata,
        tablespaces=placed,
        files=run.files.files,
        bytes_written=run.files.bytes,
        bytes_downloaded=run.downloaded,
        archives=_archives_read(run),
        elapsed=time.monotonic() - run.started,
        target=run.request.target.describe(),
        restore_command=run.restore_command,
        credentials_file=run.credentials_file,
        wal_restore_dir=run.paths.wal_dir,
        verified=tuple(run.verified),
        not_verified=tuple(run.not_verified),
        warnings=tuple(run.warnings),
        kept_files=len(run.files.kept),
        kept_bytes=run.kept_bytes,
        chain=len(run.plan.chain),
    )


def _archives_read(run: RestoreRun) -> int:
    """The parts a restore reads: the backup's, or every chain link's (a tablespace dropped
    since an older link is not read)."""
    if not run.plan.chain:
        return sum(len(s.parts) for s in run.plan.sets)
    where = run.plan.destinations
    return sum(len(s.parts) for link in run.plan.chain for s in link.sets if s.name in where)


__all__ = [
    "check_pg_control",
    "lay_out",
    "restore_result",
    "seal",
    "write_backup_manifest",
]
