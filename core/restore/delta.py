"""Delta restore (`--delta`, pgBackRest's): restore into an existing data directory.

Before anything is written the directory is proven safe to change: no live postmaster.pid,
and its global/pg_control belongs to the backup's system (unless forced). Then its
pg_control is moved aside (under the name the restore writes it to), so that a delta
restore that dies half-way leaves a directory PostgreSQL refuses to start, and that a
second `--delta` run still knows whose directory it is. Every file the backup restores
that is already there with the recorded size and checksum is kept; every other file
(WAL, files the backup does not hold, pg_tblspc links, databases dropped since) goes.
The fetch then writes only what is missing (core.restore.delta_fetch).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from core.catalog.manifest import FileRecord, new_checksum
from core.errors import OperationFailed, permission_denied
from core.postgres.control import SYSTEM_ID_SIZE
from core.restore.extract import NOT_RESTORED, PG_CONTROL, PG_CONTROL_PENDING, Destination
from core.restore.plan import check_not_running
from core.restore.rerun import MARKER, marked_backup, write_marker
from core.restore.state import RestoreRun

MiB = 1024 * 1024
#: always rewritten: each ends with a CRC-32C of what precedes it (and padding), so the
#: CRC-32C of every sound copy is the same constant and cannot tell two copies apart
SELF_CHECKED_NAMES = ("pg_filenode.map",)
SELF_CHECKED_PARENTS = ("pg_twophase",)
SELF_CHECKED_PATHS = (PG_CONTROL, "pg_logical/replorigin_checkpoint")
READ_SIZE = MiB
CHECKSUM_WORKERS = 4  # local reads and checksums (the C checksums release the GIL)
#: directories whose subdirectories are databases: dropped since the backup, they go whole
DATABASE_PARENTS = ("base",)
#: PostgreSQL's directories, recreated when missing (a ranged fetch sees no directory members)
PG_DIRS = (
    "base",
    "global",
    "pg_commit_ts",
    "pg_dynshmem",
    "pg_logical",
    "pg_logical/mappings",
    "pg_logical/snapshots",
    "pg_multixact",
    "pg_multixact/members",
    "pg_multixact/offsets",
    "pg_notify",
    "pg_replslot",
    "pg_serial",
    "pg_snapshots",
    "pg_stat",
    "pg_stat_tmp",
    "pg_subtrans",
    "pg_tblspc",
    "pg_twophase",
    "pg_wal",
    "pg_wal/archive_status",
    "pg_xact",
)


@dataclass(frozen=True)
class LocalFile:
    """A regular file found in a destination, under its manifest path."""

    manifest_path: str
    path: str  # absolute
    size: int


def _system_identifier(pgdata: str) -> int | None:
    for name in (PG_CONTROL, PG_CONTROL_PENDING):
        try:
            with open(os.path.join(pgdata, name), "rb") as fh:
                head = fh.read(SYSTEM_ID_SIZE)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise OperationFailed(f"cannot read {pgdata}/{name}: {exc.strerror}") from None
        if len(head) == SYSTEM_ID_SIZE:
            return int.from_bytes(head, "little")
    return None


def check_identity(pgdata: str, backup_id: str, systemid: str, force: bool) -> None:
    """The directory is empty or the backup's cluster's (else OperationFailed, unless forced)."""
    if force or not set(os.listdir(pgdata)) - {MARKER} or marked_backup(pgdata) == backup_id:
        return  # empty, forced, or this backup's killed restore (core.restore.rerun)
    found = _system_identifier(pgdata)
    if found is None:
        raise OperationFailed(
            f"{pgdata} is not empty and holds no global/pg_control: it is not a PostgreSQL "
            "data directory to restore over (--force to replace it anyway)"
        )
    if systemid and str(found) != systemid:
        raise OperationFailed(
            f"{pgdata} belongs to system {found}, backup {backup_id} to system {systemid}: "
            "another cluster's directory (--force to replace it anyway)"
        )


def wanted_files(run: RestoreRun) -> dict[str, FileRecord]:
    """The files the restore writes (pgvault.json's, less what a restore leaves out)."""
    records = run.files.records or {}
    return {
        path: record
        for path, record in records.items()
        if path not in NOT_RESTORED and path != "pg_wal" and not path.startswith("pg_wal/")
    }


def mark_restoring(run: RestoreRun) -> None:
    """The phase: the marker a rerun after a kill finds (core.restore.rerun)."""
    info = run.plan.info
    spaces = {d.name: d.root for d in run.plan.destinations.values() if d.name != "data"}
    write_marker(run.marker, info.backup_id, str(info.systemid or ""), run.request.sync, spaces)


def prepare_delta(run: RestoreRun) -> None:
    """The phase (with --delta): checks, pg_control aside, the local files kept or removed."""
    if not run.request.delta:
        return
    pgdata, info = run.pgdata, run.plan.info
    check_not_running(pgdata)
    check_identity(pgdata, info.backup_id, str(info.systemid or ""), run.request.force)
    run.reporter.phase("comparing the existing files with the backup")
    control = os.path.join(pgdata, PG_CONTROL)
    if os.path.lexists(control):
        os.replace(control, os.path.join(pgdata, PG_CONTROL_PENDING))
    wanted = wanted_files(run)
    candidates = []
    removed = 0
    for dest in run.plan.destinations.values():
        local, gone = _sweep(dest, wanted)
        candidates += local
        removed += gone
    kept = _matching(candidates, wanted, run.files.algorithm)
    run.files.kept = frozenset(kept)
    wal = os.path.join(pgdata, "pg_wal")
    if os.path.islink(wal) and os.path.isdir(wal):
        # On its own volume: the link stays, and the restore writes through it like PostgreSQL.
        run.files.created_dirs.add(wal)
    for name in PG_DIRS:
        with contextlib.suppress(FileExistsError):
            os.mkdir(os.path.join(pgdata, name), 0o700)
            run.files.created_dirs.add(os.path.join(pgdata, name))
    kept_bytes = sum(wanted[p].size for p in kept)
    run.kept_bytes = kept_bytes
    run.reporter.log(
        f"delta: {len(kept)} files ({kept_bytes / MiB:.1f} MiB) already in place are kept, "
        f"{len(wanted) - len(kept)} to write, {removed} removed"
    )


def own_new_directories(run: RestoreRun) -> None:
    """The phase (with --delta, once the owner is known): directories created without an
    archive's directory member (ranged reads see none) get the data directory's owner."""
    if not run.request.delta:
        return
    described = run.files.directories
    created = set(run.files.created_dirs)
    if run.plan.create_root:
        created.add(run.pgdata)
    if run.request.continued:
        # A killed restore dies before it sets its directories' owners and modes (after
        # its last file): every directory it made is set here.
        for dest in run.plan.destinations.values():
            created.update(directory for directory, _, _ in os.walk(dest.root))
    mode = 0o750 if stat.S_IMODE(os.stat(run.pgdata).st_mode) == 0o750 else 0o700  # noqa: PLR2004 - modes
    for path in sorted(created - set(described)):
        if os.path.islink(path):
            continue  # a linked pg_wal: its directory is the operator's
        os.chmod(path, mode)
        run.own(path)


def _sweep(dest: Destination, wanted: dict[str, FileRecord]) -> tuple[list[LocalFile], int]:
    """A destination's files: those the backup holds returned, every other one removed."""
    found: list[LocalFile] = []
    removed = 0
    with_files = {os.path.dirname(p) for p in wanted}
    # A tablespace location: only the backup's version directories (PG_15_...), never what
    # another version left there (pg_upgrade's old cluster until it is deleted).
    prefix = dest.manifest_prefix
    mine = {p[len(prefix) :].split("/")[0] for p in wanted if p.startswith(prefix)}
    for entry, rel in _walk(dest.root, ""):
        if dest.name != "data" and rel.split("/")[0] not in mine:
            continue
        manifest_path = dest.manifest_prefix + rel
        if entry.is_dir(follow_symlinks=False) or _is_wal_link(dest, rel, entry):
            if manifest_path in wanted or _dropped_database(dest, rel, with_files):
                _remove_tree(entry.path)
                removed += 1
            continue
        if dest.name == "data" and rel == MARKER:
            continue  # kept until the restore ends (core.restore.rerun)
        if entry.is_file(follow_symlinks=False) and manifest_path in wanted:
            found.append(LocalFile(manifest_path, entry.path, entry.stat().st_size))
            continue
        if _set_aside(dest, rel, entry) and PG_CONTROL in wanted:
            found.append(LocalFile(PG_CONTROL, entry.path, entry.stat().st_size))
            continue
        _unlink(entry.path)
        removed += 1
    return found, removed


def _set_aside(dest: Destination, rel: str, entry: os.DirEntry[str]) -> bool:
    """The directory's own pg_control, set aside by prepare_delta."""
    return (
        dest.name == "data" and rel == PG_CONTROL_PENDING and entry.is_file(follow_symlinks=False)
    )


def _walk(root: str, rel: str) -> Iterator[tuple[os.DirEntry[str], str]]:
    """Entries under root, parents before children, never through a link but pg_wal's."""
    try:
        entries = list(os.scandir(os.path.join(root, rel) if rel else root))
    except FileNotFoundError:
        return
    for entry in entries:
        path = f"{rel}/{entry.name}" if rel else entry.name
        yield entry, path
        if entry.is_dir(follow_symlinks=path == "pg_wal"):
            yield from _walk(root, path)


def _is_wal_link(dest: Destination, rel: str, entry: os.DirEntry[str]) -> bool:
    """A pg_wal linked elsewhere stays a link (its contents go, not the link)."""
    return dest.name == "data" and rel == "pg_wal" and entry.is_dir(follow_symlinks=True)


def _dropped_database(dest: Destination, rel: str, with_files: set[str]) -> bool:
    """A database directory (base/OID, a tablespace's VERSION/OID) the backup does not hold."""
    parts = rel.split("/")
    if len(parts) != 2 or not parts[1].isdigit():  # noqa: PLR2004 - PARENT/OID
        return False
    if dest.name == "data" and parts[0] not in DATABASE_PARENTS:
        return False
    prefix = dest.manifest_prefix + rel
    return not any(d == prefix or d.startswith(prefix + "/") for d in with_files)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except PermissionError as exc:
        raise permission_denied(exc) from None
    except OSError as exc:
        raise OperationFailed(f"cannot remove {path}: {exc.strerror}") from None


def _remove_tree(path: str) -> None:
    try:
        shutil.rmtree(path)
    except PermissionError as exc:
        raise permission_denied(exc) from None
    except OSError as exc:
        raise OperationFailed(f"cannot remove {path}: {exc.strerror}") from None


def _matching(
    candidates: list[LocalFile], wanted: dict[str, FileRecord], algorithm: str | None
) -> list[str]:
    """The manifest paths whose local file has the recorded size and checksum."""
    if algorithm is None:
        return []
    same_size = [
        f
        for f in candidates
        if f.size == wanted[f.manifest_path].size and not self_checked(f.manifest_path)
    ]
    with ThreadPoolExecutor(CHECKSUM_WORKERS, thread_name_prefix="pgvault-delta") as pool:
        digests = pool.map(lambda f: _checksum(f.path, algorithm), same_size)
        return [
            f.manifest_path
            for f, digest in zip(same_size, digests, strict=True)
            if digest == wanted[f.manifest_path].checksum
        ]


def self_checked(manifest_path: str) -> bool:
    """A file whose whole-file CRC-32C is the same for every sound copy (never kept)."""
    parent, _, name = manifest_path.rpartition("/")
    return (
        manifest_path in SELF_CHECKED_PATHS
        or name in SELF_CHECKED_NAMES
        or parent in SELF_CHECKED_PARENTS
    )


def _checksum(path: str, algorithm: str) -> str | None:
    checksum = new_checksum(algorithm)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None  # unreadable here: rewritten
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        while data := os.read(fd, READ_SIZE):
            checksum.update(data)
    finally:
        os.close(fd)
    return checksum.hexdigest()


__all__ = ["check_identity", "own_new_directories", "prepare_delta", "wanted_files"]
