"""Writing tar members into a data directory or a tablespace location, safely.

Every name is checked before anything is written: no absolute names, no `..`, no device
files or FIFOs; symbolic links only as `pg_tblspc/<oid>` in the PGDATA archive (and those
are rebuilt by the restore towards wherever each tablespace goes); other links are left
out with a warning. Nothing is ever written through a symbolic link: directories are
created one component at a time and files are opened with O_NOFOLLOW. Files are written
0600 and get their recorded mode (without set-id bits), owner (when running as root, by
name first and by number when the name is unknown here, as tar does) and time once
complete; directories get theirs at the end of the restore.

Each regular file is checksummed as it is written and compared with pgvault.json when the
backup has one. PostgreSQL's pg_wal contents, postmaster.pid, standby.signal and
tablespace_map are not restored (they would turn the restore into something else);
`global/pg_control` is written under a temporary name and put in place last, so that a
restore that dies half-way leaves a directory PostgreSQL refuses to start.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import pwd
import queue
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from core.catalog.manifest import Checksum, FileRecord, new_checksum
from core.errors import IntegrityError, OperationFailed, PgvaultError, cannot_write
from core.restore.tarparse import DIRECTORY, FILE, HARDLINK, SYMLINK, TarError, TarMember

log = logging.getLogger("pgvault.restore")

PG_CONTROL = "global/pg_control"
PG_CONTROL_PENDING = "global/pg_control.pgvault-restoring"
#: left out of every restore (why: see the module docstring)
NOT_RESTORED = {
    "postmaster.pid": "a stale server lock",
    "postmaster.opts": "the source server's start options",
    "standby.signal": "it would start a standby instead of the recovery pgvault configures",
    "recovery.signal": "pgvault writes its own",
    "tablespace_map": "the tablespace links are rebuilt for where each tablespace goes",
    "backup_manifest": "pgvault writes the backup's own",
}
_LINK_DEPTH = 2  # pg_tblspc/<oid>: the tablespace links of PGDATA
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeArchive(OperationFailed):
    """An archive member that must not be restored (escaping path, device file...)."""


@cache
def _uid(name: str, number: int) -> int:
    if name:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name).pw_uid
    return number


@cache
def _gid(name: str, number: int) -> int:
    if name:
        with contextlib.suppress(KeyError):
            return grp.getgrnam(name).gr_gid
    return number


def clean_name(name: str, archive: str) -> str:
    """A member name as a safe relative path ('.' for the archive's root)."""
    if "\0" in name:
        raise UnsafeArchive(f"{archive}: a member name holds a NUL byte")
    if name.startswith("/"):
        raise UnsafeArchive(f"{archive}: member {name!r} has an absolute name")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"{archive}: member {name!r} escapes the directory it restores to")
    return "/".join(parts) or "."


@dataclass
class DirMeta:
    path: str  # absolute
    mode: int
    uid: int
    gid: int
    mtime: float


@dataclass
class Destination:
    """Where one archive set goes: PGDATA ('data') or a tablespace's location."""

    name: str  # 'data' or the tablespace OID
    root: str  # absolute directory
    manifest_prefix: str  # '' or 'pg_tblspc/<oid>/'


class Syncer:
    """fsyncs finished files on a background thread while the restore goes on."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if enabled:
            self._thread = threading.Thread(target=self._run, name="pgvault-fsync", daemon=True)
            self._thread.start()

    def add(self, path: str) -> None:
        if self.enabled:
            self._queue.put(path)

    def _run(self) -> None:
        while (path := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except FileNotFoundError:
                continue  # replaced since (a later copy in the same archive)
            except OSError as exc:
                self._error = OperationFailed(f"cannot fsync {path}: {exc.strerror}")

    def finish(self) -> None:
        """Wait for every queued file; raise the first fsync failure."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._thread is not None:
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None


@dataclass
class RestoreState:
    """What every archive's extractor shares (thread-safe where it changes)."""

    records: dict[str, FileRecord] | None  # pgvault.json's files by manifest path
    algorithm: str | None  # pgvault.json's checksum algorithm
    as_root: bool
    tablespace_oids: frozenset[str]
    syncer: Syncer
    advance_files: Callable[[int], None]
    lock: threading.Lock = field(default_factory=threading.Lock)
    directories: dict[str, DirMeta] = field(default_factory=dict)
    created_dirs: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)  # manifest paths restored
    kept: frozenset[str] = frozenset()  # already in place, as recorded (a delta restore)
    left_out: dict[str, str] = field(default_factory=dict)  # manifest path -> why
    links: set[str] = field(default_factory=set)  # pg_tblspc/<oid> links in the archive
    files: int = 0
    bytes: int = 0
    root_owner: tuple[int, int] | None = None  # of PGDATA, from its archive's root entry
    on_root_owner: Callable[[int, int], None] | None = None


class Extractor:
    """The tar handler of one stored archive part: writes its members under a destination."""

    def __init__(
        self, state: RestoreState, dest: Destination, archive: str, label: str | None = None
    ) -> None:
        self.state = state
        self.dest = dest
        self.archive = archive  # the archive object's file name, as pgvault.json records it
        self.label = label or archive  # the object's key, for messages
        self._fd: int | None = None
        self._path = ""
        self._final = ""
        self._member: TarMember | None = None
        self._manifest_path = ""
        self._checksum: Checksum | None = None
        self._written = 0
        self._record: FileRecord | None = None
        self._checksums: dict[str, tuple[int, str | None]] = {}  # for hard links

    # ---- TarHandler -------------------------------------------------------------------------

    def begin(self, member: TarMember) -> None:
        name = clean_name(member.name, self.label)
        self._member = member
        if member.kind == FILE:
            self._begin_file(name, member)
        elif member.kind == DIRECTORY:
            self._directory(name, member)
        elif member.kind == SYMLINK:
            self._symlink(name, member)
        elif member.kind == HARDLINK:
            self._hardlink(name, member)
        else:
            raise UnsafeArchive(
                f"{self.label}: member {name!r} is a device file or FIFO "
                f"(type {member.type!r}): pgvault restores files, directories and "
                "tablespace links only"
            )

    def data(self, chunk: memoryview) -> None:
        if self._fd is None:
            return
        # No copy: the chunk is only used during this call.
        if self._checksum is not None:
            self._checksum.update(chunk)
        view = chunk
        while len(view):
            try:
                written = os.write(self._fd, view)
            except OSError as exc:
                raise cannot_write(self._final, exc) from None
            view = view[written:]
        self._written += len(chunk)

    def end(self) -> None:
        if self._fd is None or self._member is None:
            self._member = None
            return
        fd, self._fd = self._fd, None
        member = self._member
        self._member = None
        try:
            self._finish_file(fd, member)
        finally:
            os.close(fd)
        self.state.syncer.add(self._path)
        with self.state.lock:
            self.state.files += 1
            self.state.bytes += self._written
            self.state.written.add(self._manifest_path)
        self.state.advance_files(1)

    def close(self) -> None:
        """Close the file of a member that never ended (the archive failed or the restore
        was cancelled mid-file): a raw descriptor is never closed by the garbage collector."""
        fd, self._fd = self._fd, None
        self._member = None
        if fd is not None:
            os.close(fd)

    # ---- members ---------------------------------------------------------------------------

    def _pending_control(self) -> str:
        return os.path.join(self.dest.root, PG_CONTROL_PENDING)

    def _owner(self, member: TarMember) -> tuple[int, int]:
        if not self.state.as_root:
            return os.geteuid(), os.getegid()
        uid, gid = _uid(member.uname, member.uid), _gid(member.gname, member.gid)
        owner = self.state.root_owner
        if uid == 0 and owner is not None and owner[0] != 0:
            # barman-cloud writes backup_label as root's (reference §9): a file of the
            # data directory belongs to the data directory's owner.
            return owner
        return uid, gid

    def _skip(self, manifest_path: str, why: str) -> None:
        with self.state.lock:
            self.state.left_out[manifest_path] = why

    def _begin_file(self, name: str, member: TarMember) -> None:
        manifest_path = self.dest.manifest_prefix + name
        is_data = self.dest.name == "data"
        if is_data and (name == "pg_wal" or name.startswith("pg_wal/")):
            self._skip(manifest_path, "WAL comes from the archive through restore_command")
            return
        if is_data and name in NOT_RESTORED:
            self._skip(manifest_path, NOT_RESTORED[name])
            log.info("not restoring %s from %s: %s", name, self.label, NOT_RESTORED[name])
            return
        if is_data:
            self._check_tablespace_path(name)
        if name == ".":
            raise UnsafeArchive(f"{self.label}: a file member names the archive's root")
        record = None
        records = self.state.records
        if records is not None:
            record = records.get(manifest_path)
            if record is None:
                raise IntegrityError(
                    f"{self.label} holds {manifest_path}, which pgvault.json does not record"
                )
            if record.archive != self.archive:
                return  # a later copy in another part wins (tar's rule); it writes the file
            if record.size != member.size:
                raise IntegrityError(
                    f"{manifest_path} in {self.label} is {member.size} bytes, "
                    f"pgvault.json records {record.size}"
                )
            if manifest_path in self.state.kept:
                return  # a delta restore: the file in place is the recorded one
        self._record = record
        self._manifest_path = manifest_path
        self._final = os.path.join(self.dest.root, name)
        self._path = self._final
        if is_data and name == PG_CONTROL:
            self._path = self._pending_control()
        self._ensure_parent(name)
        try:
            self._fd = os.open(self._path, _OPEN_FLAGS, 0o600)
        except OSError as exc:
            raise OperationFailed(f"cannot create {self._final}: {exc.strerror}") from None
        algorithm = self.state.algorithm
        self._checksum = new_checksum(algorithm) if algorithm else None
        self._written = 0

    def _finish_file(self, fd: int, member: TarMember) -> None:
        if self._written != member.size:
            raise TarError(f"{self._manifest_path}: archive ends inside the file")
        digest = self._checksum.hexdigest() if self._checksum is not None else None
        record = self._record
        if record is not None and digest != record.checksum:
            raise IntegrityError(
                f"{self._manifest_path} restored from {self.label} does not match its "
                f"checksum in pgvault.json ({digest}, recorded {record.checksum}): the stored "
                "archive is damaged"
            )
        self._checksums[self._manifest_path] = (member.size, digest)
        uid, gid = self._owner(member)
        try:
            if self.state.as_root:
                os.fchown(fd, uid, gid)
            os.fchmod(fd, member.mode & 0o777)
            os.utime(fd, (member.mtime, member.mtime))
        except OSError as exc:
            raise OperationFailed(f"cannot set the attributes of {self._final}: {exc}") from None

    def _directory(self, name: str, member: TarMember) -> None:
        is_data = self.dest.name == "data"
        if is_data and name != ".":
            self._check_tablespace_path(name)
        if is_data and name.startswith("pg_wal/") and name.count("/") > 1:
            self._skip(self.dest.manifest_prefix + name, "inside pg_wal")
            return
        path = self.dest.root if name == "." else os.path.join(self.dest.root, name)
        if name != ".":
            self._ensure_dir(name)
        uid, gid = self._owner(member)
        mode = member.mode & 0o777
        if is_data and name == ".":
            # PostgreSQL starts only on a data directory of mode 0700 or 0750.
            mode = mode if mode in (0o700, 0o750) else 0o700
            self._root_owner(uid, gid)
        with self.state.lock:
            self.state.directories[path] = DirMeta(path, mode, uid, gid, member.mtime)

    def _root_owner(self, uid: int, gid: int) -> None:
        callback = None
        with self.state.lock:
            if self.state.root_owner is None:
                self.state.root_owner = (uid, gid)
                callback = self.state.on_root_owner
        if callback is not None:
            callback(uid, gid)

    def _symlink(self, name: str, member: TarMember) -> None:
        manifest_path = self.dest.manifest_prefix + name
        parts = name.split("/")
        if self.dest.name == "data" and len(parts) == _LINK_DEPTH and parts[0] == "pg_tblspc":
            if parts[1] in self.state.tablespace_oids:
                with self.state.lock:
                    self.state.links.add(parts[1])
                return  # rebuilt towards where the tablespace is restored
            raise UnsafeArchive(
                f"{self.label}: link {name} -> {member.linkname} names no tablespace of the backup"
            )
        if self.dest.name == "data" and name == "pg_wal":
            return  # a symlinked pg_wal: restored as an empty directory
        log.warning(
            "not restoring symbolic link %s -> %s from %s: links are restored only for tablespaces",
            name,
            member.linkname,
            self.label,
        )
        self._skip(manifest_path, f"a symbolic link to {member.linkname}")

    def _hardlink(self, name: str, member: TarMember) -> None:
        target = clean_name(member.linkname, self.label)
        target_manifest = self.dest.manifest_prefix + target
        manifest_path = self.dest.manifest_prefix + name
        if target_manifest not in self._checksums:
            raise UnsafeArchive(
                f"{self.label}: hard link {name} -> {member.linkname} does not name a "
                "file restored before it from the same archive"
            )
        size, digest = self._checksums[target_manifest]
        records = self.state.records
        if records is not None:
            record = records.get(manifest_path)
            if record is None or record.size != size or record.checksum != digest:
                raise IntegrityError(f"{manifest_path} ({self.label}) is not as recorded")
        self._ensure_parent(name)
        path = os.path.join(self.dest.root, name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.link(os.path.join(self.dest.root, target), path, follow_symlinks=False)
        self._checksums[manifest_path] = (size, digest)
        with self.state.lock:
            self.state.written.add(manifest_path)

    # ---- paths ------------------------------------------------------------------------------

    def _check_tablespace_path(self, name: str) -> None:
        """Nothing may be written under a tablespace link (its files have their own archive)."""
        parts = name.split("/")
        if (
            len(parts) > _LINK_DEPTH
            and parts[0] == "pg_tblspc"
            and parts[1] in self.state.tablespace_oids
        ):
            raise UnsafeArchive(
                f"{self.label}: {name} lies under the link of tablespace {parts[1]}"
            )

    def _ensure_parent(self, name: str) -> None:
        parent = name.rpartition("/")[0]
        if parent:
            self._ensure_dir(parent)

    def _ensure_dir(self, name: str) -> None:
        """Create a directory under the root one component at a time, never via a link."""
        path = os.path.join(self.dest.root, name)
        with self.state.lock:
            if path in self.state.created_dirs:
                return
        parent = name.rpartition("/")[0]
        if parent:
            self._ensure_dir(parent)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafeArchive(
                    f"{self.label}: {name} is needed as a directory but is not one"
                ) from None
        except OSError as exc:
            raise OperationFailed(f"cannot create directory {path}: {exc.strerror}") from None
        with self.state.lock:
            self.state.created_dirs.add(path)


def apply_directory_metadata(state: RestoreState) -> None:
    """Modes, owners and times of every directory an archive described (after all files)."""
    for meta in sorted(state.directories.values(), key=lambda m: m.path, reverse=True):
        try:
            if state.as_root:
                os.chown(meta.path, meta.uid, meta.gid, follow_symlinks=False)
            os.chmod(meta.path, meta.mode)
            os.utime(meta.path, (meta.mtime, meta.mtime), follow_symlinks=False)
        except OSError as exc:
            raise OperationFailed(f"cannot set the attributes of {meta.path}: {exc}") from None


def write_file(path: str, data: bytes, owner: tuple[int, int] | None) -> None:
    """Write a small file the restore adds (0600, never through a link), owned as asked."""
    fd = os.open(path, _OPEN_FLAGS, 0o600)
    try:
        if owner is not None:
            os.fchown(fd, owner[0], owner[1])
        view = memoryview(data)
        while len(view):
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "NOT_RESTORED",
    "PG_CONTROL",
    "PG_CONTROL_PENDING",
    "Destination",
    "Extractor",
    "PgvaultError",
    "RestoreState",
    "Syncer",
    "UnsafeArchive",
    "apply_directory_metadata",
    "clean_name",
    "fsync_path",
    "write_file",
]
