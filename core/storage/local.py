"""A local directory as an object store: atomic writes (temp file, fsync, rename, fsync dir).

Parts of a streaming write land at their offsets in a hidden temp file, concurrently; the
object appears under its name only once complete. Tags and storage class live in a hidden
sidecar file next to the object. The archive tier is a separate directory, `.pgvault-archive`
under the root (a mount on cheaper disk, say): an archived object lives there under its own
key, is listed with storage class ARCHIVE, and cannot be read until it is rehydrated.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import (
    ContainerNotFound,
    InputError,
    ObjectArchived,
    ObjectExists,
    ObjectNotFound,
    StorageError,
    own_cause,
    permission_denied,
)
from core.storage.backend import RawStream
from core.storage.bandwidth import Payload
from core.storage.config import StoreConfig
from core.storage.local_owner import Ownership
from core.storage.objects import (
    CommonPrefix,
    ObjectInfo,
    PendingUpload,
    PutOptions,
    StoredChunk,
)
from core.storage.store import ObjectStore
from core.urls import Location, Provider

PARTIAL = ".pgvault-partial"
META = ".pgvault-meta"
COPY_BLOCK = 1024 * 1024
ARCHIVE_DIR = ".pgvault-archive"
ARCHIVE = "ARCHIVE"


@dataclass
class _Upload:
    key: str
    final: str
    temp: str
    fd: int
    options: PutOptions


class _FileStream(RawStream):
    def __init__(self, path: str, start: int, end: int | None) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._fh.seek(start)
        self._left = None if end is None else end - start

    def read(self, n: int) -> bytes:
        if self._left is not None:
            n = min(n, self._left)
            if n <= 0:
                return b""
        data = self._fh.read(n)
        if self._left is not None:
            self._left -= len(data)
        return data

    def close(self) -> None:
        self._fh.close()


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _naming(path: str) -> Iterator[None]:
    """An OSError of a write to an open file names the file (so a full disk is named)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror, path) from exc


def _nearest_existing(path: str) -> str:
    """The deepest existing directory on the way to `path` (what `mkdir -p` would write in)."""
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _make_dirs(directory: str, owner: Ownership | None = None) -> None:
    """`mkdir -p` that fsyncs the parent of every directory it creates, so that a new
    object's path survives a power loss (a file's fsync does not persist its directory entry);
    each directory takes `owner`'s owner and mode when given."""
    missing = []
    current = os.path.abspath(directory)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
            continue  # another writer made it; it adopts and fsyncs it
        if owner is not None:
            owner.adopt_dir(path)
        _fsync_dir(os.path.dirname(path))


def _is_hidden(name: str) -> bool:
    return name == ARCHIVE_DIR or (
        name.startswith(".") and (name.endswith(PARTIAL) or name.endswith(META))
    )


class LocalStore(ObjectStore):
    """Objects are files under the location's directory; keys map to relative paths."""

    provider = Provider.FILE
    min_part_size = 1
    max_parts = 1_000_000
    delete_batch = 1000
    archive_class = ARCHIVE
    archived_classes = frozenset({ARCHIVE})

    def __init__(self, location: Location, config: StoreConfig) -> None:
        super().__init__(location, config)
        self.root = (
            os.path.join(location.bucket, location.prefix) if location.prefix else (location.bucket)
        )

    def default_chunk_size(self) -> int:
        return 8 * 1024 * 1024

    # ---- paths ----------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise InputError(f"invalid object key {key!r}")
        return os.path.join(self.root, *parts)

    def local_file(self, key: str) -> Path | None:
        """The object's file; None when it is absent or archived (a read says why)."""
        path = self._path(key)
        return Path(path) if os.path.isfile(path) else None

    def _archived_path(self, key: str) -> str:
        """Where the object lives while it is in the archive tier."""
        self._path(key)  # validates the key
        return os.path.join(self.root, ARCHIVE_DIR, *key.split("/"))

    def _meta_path(self, path: str) -> str:
        head, tail = os.path.split(path)
        return os.path.join(head, f".{tail}{META}")

    def _require_root(self) -> None:
        """Create the root directory on first use, like `mkdir -p`."""
        if os.path.isdir(self.root):
            return
        try:
            # The new root is its parent's owner's, as what it will hold is the root's: a
            # backup run as root first must not lock archive_command (postgres) out of it.
            _make_dirs(self.root, Ownership.of_root(_nearest_existing(self.root)))
        except FileExistsError:
            raise ContainerNotFound(f"{self.root} is not a directory") from None
        except NotADirectoryError:
            raise ContainerNotFound(
                f"directory {self.root} cannot be created: a part of its path is a file"
            ) from None
        except FileNotFoundError:
            raise ContainerNotFound(f"directory {self.root} cannot be created") from None
        except OSError as exc:  # refused, a read-only file system, a full disk
            cause = own_cause(exc)
            raise cause or ContainerNotFound(f"cannot create {self.root}: {exc.strerror}") from None

    def _root_for_reading(self) -> bool:
        """Whether the root exists (a look never creates it, as `ls` would not); a root
        that is a file, or under one, is no container."""
        if os.path.isdir(self.root):
            return True
        base = _nearest_existing(self.root)
        if base == self.root:
            raise ContainerNotFound(f"{self.root} is not a directory")
        if not os.path.isdir(base):
            raise ContainerNotFound(
                f"directory {self.root} cannot be created: a part of its path is a file"
            )
        return False

    def _read_meta(self, path: str) -> dict[str, Any]:
        try:
            with open(self._meta_path(path)) as fh:
                data: dict[str, Any] = json.load(fh)
                return data
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StorageError(f"unreadable metadata for {path}: {exc}") from exc

    def _write_meta(self, path: str, meta: dict[str, Any]) -> None:
        target = self._meta_path(path)
        if not meta:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
            return
        temp = f"{target}.{uuid.uuid4().hex}{PARTIAL}"
        with open(temp, "w") as fh:
            self._ownership.adopt_fd(fh.fileno())
            json.dump(meta, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, target)

    def _options_meta(self, options: PutOptions) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        if options.tags:
            meta["tags"] = options.tag_dict()
        if options.storage_class:
            meta["storage_class"] = options.storage_class
        if options.metadata:
            meta["metadata"] = options.metadata_dict()
        return meta

    # ---- primitives --------------------------------------------------------------------------

    @functools.cached_property
    def _ownership(self) -> Ownership:
        """New files and directories take the root's owner (core.storage.local_owner)."""
        self._require_root()
        return Ownership.of_root(self.root)

    def _check(self) -> None:
        # A root still to be made is checked where the first write will make it.
        where = self.root if self._root_for_reading() else _nearest_existing(self.root)
        if not os.access(where, os.R_OK | os.W_OK | os.X_OK):
            refused = PermissionError(errno.EACCES, os.strerror(errno.EACCES), where)
            raise permission_denied(refused)

    def _check_readable(self) -> None:
        # Only read: a missing root is named as missing, not as a parent to be made writable.
        if not self._root_for_reading():
            raise ContainerNotFound(f"directory {self.root} does not exist")
        if not os.access(self.root, os.R_OK | os.X_OK):
            refused = PermissionError(errno.EACCES, os.strerror(errno.EACCES), self.root)
            raise permission_denied(refused)

    def _begin(self, key: str, options: PutOptions) -> _Upload:
        self._require_root()
        final = self._path(key)
        directory, name = os.path.split(final)
        owner = self._ownership
        try:
            _make_dirs(directory, owner)
        except PermissionError:
            raise  # core.errors.own_cause names the directory's owner and what to do
        except OSError as exc:
            raise own_cause(exc) or StorageError(
                f"cannot create {directory}: {exc.strerror}"
            ) from exc
        if options.if_absent and os.path.exists(final):
            raise ObjectExists(f"{key} already exists")
        temp = os.path.join(directory, f".{name}.{uuid.uuid4().hex}{PARTIAL}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, owner.file_mode)
        try:
            owner.adopt_fd(fd)
        except BaseException:
            os.close(fd)
            os.unlink(temp)
            raise
        return _Upload(key=key, final=final, temp=temp, fd=fd, options=options)

    def _finish(self, upload: _Upload) -> None:
        try:
            with _naming(upload.temp):
                os.fsync(upload.fd)
        finally:
            self._close(upload)
        directory = os.path.dirname(upload.final)
        meta = self._options_meta(upload.options)
        if upload.options.if_absent:
            try:
                os.link(upload.temp, upload.final)
            except FileExistsError:
                os.unlink(upload.temp)
                raise ObjectExists(f"{upload.key} already exists") from None
            os.unlink(upload.temp)
            self._write_meta(upload.final, meta)
        else:
            self._write_meta(upload.final, meta)
            os.replace(upload.temp, upload.final)
        _fsync_dir(directory)

    def _put(self, key: str, body: Payload, options: PutOptions) -> None:
        upload = self._begin(key, options)
        try:
            self._write_at(upload, 0, body)
            self._finish(upload)
        except BaseException:
            self._discard(upload)
            raise

    def _write_at(self, upload: _Upload, offset: int, body: Payload) -> None:
        with _naming(upload.temp):
            for view in body.views(COPY_BLOCK * 8):
                written = 0
                while written < len(view):
                    written += os.pwrite(upload.fd, view[written:], offset + written)
                offset += len(view)

    @staticmethod
    def _close(upload: _Upload) -> None:
        """Close once: a second close of the number could close another thread's new file."""
        fd, upload.fd = upload.fd, -1
        if fd >= 0:
            os.close(fd)

    def _discard(self, upload: _Upload) -> None:
        with contextlib.suppress(OSError):
            self._close(upload)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(upload.temp)

    def _mpu_begin(self, key: str, options: PutOptions) -> _Upload:
        return self._begin(key, options)

    def _mpu_part(self, handle: _Upload, number: int, offset: int, body: Payload) -> int:
        self._write_at(handle, offset, body)
        return number

    def _mpu_complete(self, handle: _Upload, parts: list[Any]) -> None:
        self._finish(handle)

    def _mpu_abort(self, handle: _Upload) -> None:
        self._discard(handle)

    def _mpu_token(self, handle: _Upload) -> str:
        return os.path.basename(handle.temp)

    def _mpu_reopen(
        self, key: str, token: str, options: PutOptions, chunks: tuple[StoredChunk, ...]
    ) -> tuple[_Upload, int] | None:
        """The partial file again, cut after its leading parts that hash as recorded."""
        final = self._path(key)
        name = os.path.basename(final)
        if not (token.startswith(f".{name}.") and token.endswith(PARTIAL)) or "/" in token:
            return None  # not a partial file of this key: never open another path
        if options.if_absent and os.path.exists(final):
            raise ObjectExists(f"{key} already exists")
        temp = os.path.join(os.path.dirname(final), token)
        try:
            fd = os.open(temp, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        held, end = 0, 0
        for chunk in chunks:
            data = os.pread(fd, chunk.size, end)
            if len(data) != chunk.size or hashlib.sha256(data).hexdigest() != chunk.sha256:
                break
            held, end = held + 1, end + chunk.size
        os.ftruncate(fd, end)  # what follows was never recorded: it is written again
        return _Upload(key=key, final=final, temp=temp, fd=fd, options=options), held

    def _mpu_cut(self, handle: _Upload, offset: int) -> None:
        os.ftruncate(handle.fd, offset)

    def _open_stream(self, key: str, start: int, end: int | None) -> RawStream:
        path = self._path(key)
        try:
            return _FileStream(path, start, end)
        except (FileNotFoundError, NotADirectoryError):
            self._root_for_reading()
            if os.path.isfile(self._archived_path(key)):
                raise ObjectArchived(
                    f"{key} is in the archive tier: rehydrate it before reading"
                ) from None
            raise ObjectNotFound(f"{key} does not exist") from None
        except IsADirectoryError:
            raise ObjectNotFound(f"{key} does not exist") from None

    def _head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        if not os.path.isfile(path) and os.path.isfile(self._archived_path(key)):
            path = self._archived_path(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            self._root_for_reading()
            raise ObjectNotFound(f"{key} does not exist") from None
        if not os.path.isfile(path):
            raise ObjectNotFound(f"{key} does not exist")
        meta = self._read_meta(path)
        return ObjectInfo(
            key=key,
            size=st.st_size,
            modified=datetime.fromtimestamp(st.st_mtime, UTC),
            storage_class=ARCHIVE if path != self._path(key) else meta.get("storage_class"),
            metadata=tuple(sorted(meta.get("metadata", {}).items())),
        )

    def _walk_keys(self, directory: str, rel: str) -> Iterator[str]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if _is_hidden(entry.name):
                continue
            key = f"{rel}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk_keys(entry.path, key + "/")
            elif entry.is_file(follow_symlinks=False):
                yield key

    def _list(
        self, prefix: str, delimiter: str | None, page_size: int | None
    ) -> Iterator[ObjectInfo | CommonPrefix]:
        if not self._root_for_reading():
            return
        dir_part, _, name_part = prefix.rpartition("/")
        base = os.path.join(self.root, *dir_part.split("/")) if dir_part else self.root
        rel = f"{dir_part}/" if dir_part else ""
        if delimiter not in (None, "", "/"):
            raise InputError("the local store lists with delimiter '/' or none")
        parts = dir_part.split("/") if dir_part else []
        archive_base = os.path.join(self.root, ARCHIVE_DIR, *parts)
        if delimiter == "/":
            found: dict[str, ObjectInfo | CommonPrefix] = {}
            for directory in (archive_base, base):  # the online copy wins a (crash) tie
                for item in self._level(directory, rel, name_part):
                    found[item.key if isinstance(item, ObjectInfo) else item.prefix] = item
            yield from (found[name] for name in sorted(found))
            return
        archived = {k: True for k in self._walk_keys(archive_base, rel) if k.startswith(prefix)}
        archived.update({k: False for k in self._walk_keys(base, rel) if k.startswith(prefix)})
        for key in sorted(archived):
            path = self._archived_path(key) if archived[key] else self._path(key)
            info = self._info_if_present(key, path)
            if info is not None:  # else deleted since the walk (an upload marker): as S3
                yield info

    def _level(
        self, directory: str, rel: str, name_part: str
    ) -> Iterator[ObjectInfo | CommonPrefix]:
        """One directory level of a delimited listing."""
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if _is_hidden(entry.name) or not entry.name.startswith(name_part):
                continue
            if entry.is_dir(follow_symlinks=False):
                if any(True for _ in self._walk_keys(entry.path, "")):
                    yield CommonPrefix(f"{rel}{entry.name}/")
            elif entry.is_file(follow_symlinks=False):
                info = self._info_if_present(f"{rel}{entry.name}", entry.path)
                if info is not None:
                    yield info

    def _info_if_present(self, key: str, path: str) -> ObjectInfo | None:
        """A listed object, or None when it was deleted since the directory was read."""
        try:
            return self._info(key, path)
        except FileNotFoundError:
            return None

    def _info(self, key: str, path: str) -> ObjectInfo:
        st = os.stat(path)
        archived = path.startswith(os.path.join(self.root, ARCHIVE_DIR) + os.sep)
        return ObjectInfo(
            key=key,
            size=st.st_size,
            modified=datetime.fromtimestamp(st.st_mtime, UTC),
            storage_class=ARCHIVE if archived else None,
        )

    def _delete(self, keys: list[str]) -> None:
        touched: set[str] = set()
        for key in keys:
            for path in (self._path(key), self._archived_path(key)):
                for victim in (path, self._meta_path(path)):
                    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                        os.unlink(victim)
                touched.add(os.path.dirname(path))
        for directory in sorted(touched, key=len, reverse=True):
            self._prune(directory)

    def _prune(self, directory: str) -> None:
        """Remove directories left empty, up to (not including) the root."""
        root = os.path.abspath(self.root)
        current = os.path.abspath(directory)
        while current.startswith(root + os.sep):
            try:
                os.rmdir(current)
            except OSError:
                return
            current = os.path.dirname(current)

    def _get_tags(self, key: str) -> dict[str, str]:
        path = self._path(key)
        if not os.path.isfile(path):
            raise ObjectNotFound(f"{key} does not exist")
        tags: dict[str, str] = self._read_meta(path).get("tags", {})
        return tags

    def _set_tags(self, key: str, tags: dict[str, str]) -> None:
        path = self._path(key)
        if not os.path.isfile(path):
            raise ObjectNotFound(f"{key} does not exist")
        meta = self._read_meta(path)
        meta["tags"] = tags
        if not tags:
            meta.pop("tags")
        self._write_meta(path, meta)

    def _set_storage_class(self, key: str, storage_class: str) -> None:
        path = self._path(key)
        if not os.path.isfile(path):
            raise ObjectNotFound(f"{key} does not exist")
        meta = self._read_meta(path)
        meta["storage_class"] = storage_class
        self._write_meta(path, meta)

    def _archive(self, key: str) -> None:
        self._move(self._path(key), self._archived_path(key), key)

    def _rehydrate(self, key: str) -> bool:
        """A local archive is a directory: moving the file back is the whole rehydration."""
        if os.path.isfile(self._path(key)):
            return True
        self._move(self._archived_path(key), self._path(key), key)
        return True

    def _move(self, source: str, target: str, key: str) -> None:
        """Rename an object (and its sidecar) between the normal and the archive directory."""
        if not os.path.isfile(source):
            if os.path.isfile(target):
                return  # already there: a repeated call after a crash
            raise ObjectNotFound(f"{key} does not exist")
        _make_dirs(os.path.dirname(target), self._ownership)
        with contextlib.suppress(FileNotFoundError):
            os.replace(self._meta_path(source), self._meta_path(target))
        os.replace(source, target)
        _fsync_dir(os.path.dirname(target))
        _fsync_dir(os.path.dirname(source))
        self._prune(os.path.dirname(source))

    def _list_pending(self, prefix: str) -> list[PendingUpload]:
        if not self._root_for_reading():
            return []
        pending = []
        # A partial file sits beside its object: only the prefix's directory is walked (a
        # copy asks for each object it writes, which a walk of the whole root made quadratic).
        start = os.path.join(self.root, os.path.dirname(prefix))
        for directory, _, files in os.walk(start):
            for name in files:
                if not (name.startswith(".") and name.endswith(PARTIAL)):
                    continue
                rel_dir = os.path.relpath(directory, self.root)
                original = name[1:].rsplit(".", 2)[0]
                key = original if rel_dir == "." else f"{rel_dir}/{original}"
                if key.startswith(prefix):
                    path = os.path.join(directory, name)
                    started = datetime.fromtimestamp(os.stat(path).st_mtime, UTC)
                    pending.append(PendingUpload(key=key, upload_id=path, started=started))
        return pending

    def _abort_pending(self, upload: PendingUpload) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(upload.upload_id)
