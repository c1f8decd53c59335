"""The restore's plan: the request checked, the backup chosen, where every archive goes.

Nothing is written here. `check_request` refuses bad input (exit 3) before the store is
opened; `plan_restore` reads the catalog and returns a BackupPlan: the backup, its archive
sets and manifests, each set's destination (PGDATA or a tablespace's location, relocated
by --tablespace) and which directories the restore will create. An incremental is planned
as its chain (core.restore.chain): every link to restore, newest first.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from dataclasses import dataclass

from core.catalog.backup_info import BackupInfo
from core.catalog.layout import ServerLayout
from core.catalog.manifest import ArchiveRecord, FileRecord, PgvaultManifest
from core.catalog.reader import ArchiveSet, Catalog
from core.errors import InputError, OperationFailed
from core.names import check_line_safe
from core.postgres.server import (
    is_running,
    postmaster_pid,
    running_postmasters,
    tablespace_locations,
)
from core.progress import Reporter
from core.restore.chain import ChainLink, plan_chain
from core.restore.extract import Destination
from core.restore.recovery import ARCHIVE_MODES, CREDENTIAL_MODES
from core.restore.request import RestoreRequest
from core.restore.rerun import (
    check_same_backup,
    marked_backup,
    marked_tablespaces,
    refuse_running,
)
from core.restore.targets import choose_backup
from core.snapshots.request import check_recovery
from core.storage import ObjectStore


@dataclass(frozen=True)
class Paths:
    """The request's places, checked: the data directory, relocations, restore_command's."""

    recovery_dir: str
    rules: dict[str, str]  # tablespace name -> new location
    wal_dir: str  # restore_command's directory (credentials, WAL spool)
    pgvault: str  # restore_command's executable


@dataclass(frozen=True)
class BackupPlan:
    """The backup to restore, what it holds and where each archive set goes."""

    info: BackupInfo
    sets: list[ArchiveSet]
    manifest: PgvaultManifest | None  # pgvault.json (None: barman-cloud wrote the backup)
    pg_manifest: bytes | None  # PostgreSQL's backup_manifest
    destinations: dict[str, Destination]  # by archive set name ('data' or an OID)
    create_root: bool  # the recovery directory is created (else an empty one is used)
    creates: dict[str, bool]  # each tablespace location: created (True) or used empty
    chain: tuple[ChainLink, ...] = ()  # an incremental: every link, newest first

    @property
    def records(self) -> dict[str, FileRecord] | None:
        """pgvault.json's files by path (None without pgvault.json)."""
        if self.manifest is None:
            return None
        return {f.path: f for f in self.manifest.files}

    @property
    def archive_records(self) -> dict[str, ArchiveRecord]:
        if self.manifest is None:
            return {}
        return {a.filename: a for a in self.manifest.archives}

    @property
    def algorithm(self) -> str | None:
        return self.manifest.checksum_algorithm if self.manifest is not None else None


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


def validate_request(request: RestoreRequest) -> None:
    """Reject bad input (exit 3), a non-empty RECOVERY_DIR included (a running server's with
    --delta, or one a running restore writes into: exit 1), before anything starts."""
    paths = check_request(request)
    if request.snapshot is not None:  # RECOVERY_DIR is on the restored disks: not empty
        check_recovery(request.snapshot, request.tablespaces, request.delta or request.force)
        return
    refuse_running(paths.recovery_dir)
    if request.delta or marked_backup(paths.recovery_dir) is not None:
        if not missing_dir(paths.recovery_dir, "the recovery directory"):
            check_not_running(paths.recovery_dir)
        return
    empty_or_missing(paths.recovery_dir, "the recovery directory")


def inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _check_options(request: RestoreRequest) -> None:
    ServerLayout(request.server)
    if not request.backup:
        raise InputError("name the backup to restore (an ID, a name, latest or auto)")
    if request.wal_credentials not in CREDENTIAL_MODES:
        raise InputError(f"--wal-credentials-via must be one of {', '.join(CREDENTIAL_MODES)}")
    if request.archive_mode not in ARCHIVE_MODES:
        raise InputError(f"--archive-mode must be one of {', '.join(ARCHIVE_MODES)}")
    if request.wal_prefetch < 0:
        raise InputError("--wal-prefetch must not be negative")
    if request.force and not request.delta:
        raise InputError("--force applies to a delta restore only (--delta)")


def _relocations(request: RestoreRequest) -> dict[str, str]:
    rules: dict[str, str] = {}
    for name, location in request.tablespaces:
        if not name:
            raise InputError(f"invalid tablespace rule {name}:{location} (NAME:LOCATION)")
        if not os.path.isabs(location):
            raise InputError(f"tablespace {name}: the location {location!r} must be absolute")
        if name in rules:
            raise InputError(f"tablespace {name} is relocated twice")
        rules[name] = os.path.normpath(location)
        missing_dir(rules[name], f"the location of tablespace {name}")
    return rules


def check_request(request: RestoreRequest) -> Paths:
    """The request's places, or InputError (exit 3) for what cannot be restored."""
    _check_options(request)
    recovery_dir = os.path.abspath(request.recovery_dir)
    if recovery_dir == "/":
        raise InputError("the recovery directory cannot be /")
    missing_dir(recovery_dir, "the recovery directory")  # not one under a file either
    rules = _relocations(request)
    wal_dir = os.path.abspath(request.wal_restore_dir or recovery_dir + ".pgvault")
    if inside(wal_dir, recovery_dir) or inside(recovery_dir, wal_dir):
        raise InputError(
            f"restore_command's directory {wal_dir} must be outside the data directory: "
            "whatever is inside would be copied into every later backup"
        )
    pgvault = request.pgvault_command or default_pgvault_command()
    if not os.path.isabs(pgvault):
        raise InputError(f"--pgvault-command must be an absolute path, not {pgvault!r}")
    if not os.access(pgvault, os.X_OK) or not os.path.isfile(pgvault):
        raise InputError(f"--pgvault-command {pgvault} is not an executable file")
    # both go into restore_command, one line of postgresql.auto.conf
    check_line_safe(wal_dir, "restore_command's directory (--wal-restore-dir)")
    check_line_safe(pgvault, "--pgvault-command")
    _check_wal_dir(wal_dir)
    return Paths(recovery_dir, rules, wal_dir, pgvault)


def check_not_running(pgdata: str) -> None:
    """OperationFailed (exit 1) when a server runs on the directory (a delta restore's)."""
    if is_running(pgdata):
        raise OperationFailed(
            f"PostgreSQL (PID {postmaster_pid(pgdata)}, postmaster.pid) is running on "
            f"{pgdata}: stop it before a delta restore"
        )


def missing_dir(path: str, what: str) -> bool:
    """True when the directory must be created; InputError when it is not a directory."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True
    except NotADirectoryError:
        raise InputError(
            f"{what} {path} cannot be created: {file_above(path)} is not a directory"
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{what} {path} exists and is not a directory")
    return False


def file_above(path: str) -> str:
    """The nearest existing parent of `path` (what `mkdir -p` would create in), which makes
    `path` impossible when it is not a directory."""
    probe = os.path.dirname(path)
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    return probe


DELTA_HINT = "--delta restores over an existing data directory of the backup's cluster"


def empty_or_missing(path: str, what: str, delta: bool = False, hint: str = DELTA_HINT) -> bool:
    """True when the directory must be created; InputError when it is not empty (unless
    a delta restore goes into it)."""
    if missing_dir(path, what):
        return True
    if not delta and os.listdir(path):
        raise InputError(
            f"{what} {path} is not empty: pgvault restores into an empty directory ({hint})"
        )
    return False


def check_tablespace_owners(
    paths: Paths, info: BackupInfo, spaces: list[Destination], continued: bool = False
) -> None:
    """A delta restore rewrites a tablespace location only if it is the recovery directory's
    own (its pg_tblspc link leads there, or, `continued`, the killed restore's marker names
    it: the links are laid out after the last file) and no running server uses it: a copy
    restored beside its source, or a cold copy sharing the source's locations, would
    rewrite the live server's files."""
    names = {str(t.oid): t.name for t in info.tablespaces or ()}
    recovery = os.path.realpath(paths.recovery_dir)
    own = tablespace_locations(paths.recovery_dir)
    marked = marked_tablespaces(paths.recovery_dir) if continued else {}
    running = {d: pid for d, pid in running_postmasters().items() if d != recovery}
    for dest in spaces:
        oid = dest.name
        name, root = names.get(oid, oid), os.path.realpath(dest.root)
        relocate = f"relocate it with --tablespace {name}:LOCATION"
        for data, pid in running.items():
            if root in tablespace_locations(data) or inside(root, data):
                raise OperationFailed(
                    f"tablespace {name}'s location {dest.root} is used by the PostgreSQL "
                    f"server running on {data} (PID {pid}): {relocate}"
                )
        mine = root in own or marked.get(oid) == root
        if not mine and os.path.isdir(root) and os.listdir(root):
            raise InputError(
                f"the location of tablespace {name} {dest.root} is not empty and is not "
                f"{paths.recovery_dir}'s own (its pg_tblspc/{oid} does not lead there): a "
                f"delta restore rewrites only its own cluster's tablespaces; {relocate}, or "
                "empty it"
            )


def plan_restore(
    request: RestoreRequest, paths: Paths, store: ObjectStore, reporter: Reporter
) -> BackupPlan:
    """Choose the backup and place each of its archive sets; nothing is written."""
    reporter.phase("checking the recovery directory")
    create_root = empty_or_missing(paths.recovery_dir, "the recovery directory", request.delta)
    reporter.phase("choosing the backup")
    store.check_readable()
    catalog = Catalog(store, request.server)
    info = choose_backup(catalog, request.backup, request.target)
    reporter.detail("backup_id", info.backup_id)
    if info.snapshots_info:
        raise InputError(
            f"backup {info.backup_id} is a snapshot backup (its data is in disk snapshots): "
            "restore it with --snapshot-recovery-instance on the instance holding its disks"
        )
    check_same_backup(paths.recovery_dir, info.backup_id)
    if request.continued:
        reporter.log(
            f"{paths.recovery_dir} holds an interrupted restore of this backup: the files "
            "already there and intact are kept"
        )
    reporter.log(f"restoring backup {info.backup_id} of server {request.server}")
    manifest = catalog.pgvault_manifest(info.backup_id)
    chain = plan_chain(catalog, info, manifest)
    if chain and request.delta:
        what = "an interrupted restore is continued" if request.continued else "--delta restores"
        raise InputError(
            f"backup {info.backup_id} is an incremental: {what} for full backups only"
            + (f"; empty {paths.recovery_dir} to restore it again" if request.continued else "")
        )
    _refuse_archived(catalog, info.backup_id, [link.info.backup_id for link in chain])
    sets = list(chain[0].sets) if chain else catalog.archives(info)
    # An incremental's backup_manifest lists what it stores, not the directory restored.
    pg_manifest = None if chain else catalog.postgres_manifest(info.backup_id)
    destinations = _destinations(paths, info, sets)
    spaces = [d for d in destinations.values() if d.name != "data"]
    if request.delta and spaces:
        check_tablespace_owners(paths, info, spaces, request.continued)
    relocate = "relocate it with --tablespace NAME:LOCATION"
    creates = {
        d.root: empty_or_missing(
            d.root, f"the location of tablespace {d.name}", request.delta, relocate
        )
        for d in spaces
    }
    if chain:
        ids = " > ".join(link.info.backup_id for link in reversed(chain))
        reporter.log(f"restoring the chain {ids} in one pass")
    return BackupPlan(info, sets, manifest, pg_manifest, destinations, create_root, creates, chain)


def _refuse_archived(catalog: Catalog, backup_id: str, chain: list[str]) -> None:
    """An archived backup (or chain link) cannot be read until it is rehydrated."""
    from core.catalog.tier import rehydrate_hint

    archived = catalog.archived()
    for needed in [backup_id, *chain]:
        if needed in archived:
            raise OperationFailed(rehydrate_hint(needed, catalog.server))


def _destinations(paths: Paths, info: BackupInfo, sets: list[ArchiveSet]) -> dict[str, Destination]:
    tablespaces = {t.name: t for t in info.tablespaces or ()}
    unknown = sorted(set(paths.rules) - set(tablespaces))
    if unknown:
        known = ", ".join(sorted(tablespaces)) or "none"
        raise InputError(
            f"backup {info.backup_id} has no tablespace {', '.join(unknown)} "
            f"(its tablespaces: {known})"
        )
    destinations = {"data": Destination("data", paths.recovery_dir, "")}
    used = {paths.recovery_dir: "the recovery directory"}
    for archive_set in sets:
        space = archive_set.tablespace
        if space is None:
            continue
        root = os.path.abspath(paths.rules.get(space.name, space.location))
        for other, what in used.items():
            if inside(root, other) or inside(other, root):
                raise InputError(
                    f"tablespace {space.name} would be restored to {root}, which overlaps "
                    f"{what} ({other}): relocate it with --tablespace {space.name}:LOCATION"
                )
        if inside(root, paths.wal_dir) or inside(paths.wal_dir, root):
            raise InputError(f"tablespace {space.name}'s location {root} overlaps {paths.wal_dir}")
        used[root] = f"tablespace {space.name}"
        destinations[archive_set.name] = Destination(
            archive_set.name, root, f"pg_tblspc/{space.oid}/"
        )
    return destinations


def _check_wal_dir(wal_dir: str) -> None:
    """restore_command's directory must be creatable (or an existing directory)."""
    if os.path.lexists(wal_dir):
        if os.path.islink(wal_dir) or not os.path.isdir(wal_dir):
            raise InputError(f"{wal_dir} exists and is not a directory (--wal-restore-dir)")
        return
    probe = file_above(wal_dir)
    if not os.path.isdir(probe):
        raise InputError(
            f"cannot create {wal_dir} (restore_command's credentials and WAL spool): {probe} "
            "is not a directory; choose a place with --wal-restore-dir"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(
            f"cannot create {wal_dir} (restore_command's credentials and WAL spool): "
            f"{probe} is not writable; choose a place with --wal-restore-dir"
        )


__all__ = [
    "BackupPlan",
    "Paths",
    "check_not_running",
    "check_request",
    "default_pgvault_command",
    "empty_or_missing",
    "inside",
    "missing_dir",
    "plan_restore",
    "validate_request",
]
