"""One exception root for pgvault; every error knows the exit code the seeds give it.

PgvaultError (4: any other error)
├── InputError (3: bad command input)
├── OperationFailed (1: the operation failed)
│   ├── PostgresError
│   ├── Cancelled
│   ├── DecryptionFailed
│   ├── PermissionDenied (the operating system refused a local file or directory)
│   ├── NoSpace (a local file system is full, or a quota spent)
│   ├── ServerBusy (another process holds the server's lock in its destination)
│   └── StorageError
│       ├── ObjectNotFound
│       ├── ContainerNotFound
│       ├── ObjectExists
│       └── IntegrityError
└── CloudConnectionError (2: the connection to the cloud provider failed)
    ├── EndpointUnreachable
    ├── AccessDenied
    └── TransientError (throttling, 5xx, resets; retried before it surfaces)
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
from enum import IntEnum

from core.secrets import redact
from core.units import format_size


class ExitCode(IntEnum):
    """Exit codes of barman-cloud's commands, which pgvault keeps."""

    OK = 0
    FAILED = 1
    CONNECTION = 2
    INPUT = 3
    OTHER = 4
    HOOK_ABORT = 63  # Barman's ABORT_STOP: a retry hook script is not run again


class PgvaultError(Exception):
    """Root of every error pgvault raises on purpose; the message is always redacted."""

    exit_code: ExitCode = ExitCode.OTHER

    def __init__(self, message: str) -> None:
        self.message = redact(message)
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class InputError(PgvaultError):
    """The command line, a URL or an argument is malformed."""

    exit_code = ExitCode.INPUT


class OperationFailed(PgvaultError):
    """The operation ran and failed (connectivity to the cloud was fine)."""

    exit_code = ExitCode.FAILED


class PostgresError(OperationFailed):
    """PostgreSQL refused a connection or a backup function failed."""


class ServerBusy(OperationFailed):
    """Another process holds the server's lock (a deletion, a resumed backup)."""


class Cancelled(OperationFailed):
    """The operation was cancelled by the operator."""


class DecryptionFailed(OperationFailed):
    """An encrypted object or key file did not open: no key, a wrong key, or changed bytes."""


class PermissionDenied(OperationFailed):
    """The operating system refused pgvault a local file or directory (EACCES, EPERM, EROFS)."""


class NoSpace(OperationFailed):
    """A local file system has no space left (ENOSPC) or the user's quota is spent (EDQUOT)."""


class StorageError(OperationFailed):
    """An object-store operation failed for a reason retrying cannot fix."""


class ObjectNotFound(StorageError):
    """The object does not exist."""


class ObjectArchived(StorageError):
    """The object is in the archive tier: it must be rehydrated before it can be read."""


class ContainerNotFound(StorageError):
    """The bucket or container does not exist."""


class ObjectExists(StorageError):
    """The object exists and pgvault will not overwrite it."""


class IntegrityError(StorageError):
    """Stored bytes do not match their recorded size or checksum."""


class CloudConnectionError(PgvaultError):
    """The object store could not be reached or refused the credentials."""

    exit_code = ExitCode.CONNECTION


class EndpointUnreachable(CloudConnectionError):
    """Connection refused, DNS failure, TLS failure or timeout."""


class AccessDenied(CloudConnectionError):
    """The credentials were refused (HTTP 401/403)."""


class TransientError(CloudConnectionError):
    """Throttling, a 5xx answer or a reset connection: worth retrying."""


def own_cause(exc: BaseException) -> PgvaultError | None:
    """The PgvaultError `exc` stands for: itself, what it was raised from, or what an SDK
    wrapped (a Cancelled raised by an upload's gate inside a request); a PermissionError or
    a read-only file system (EROFS) stands for PermissionDenied, a full disk (ENOSPC,
    EDQUOT) for NoSpace.

    What was being handled when `exc` was raised (its __context__) is not its cause: a
    transient error met while handling ObjectExists is a transient error, and a cleanup that
    fails after an upload failed fails for its own reason.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, PgvaultError):
            return current
        if isinstance(current, PermissionError):
            return permission_denied(current)
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return no_space(current)
        if isinstance(current, OSError) and current.errno == errno.EROFS:
            return permission_denied(current)
        seen.add(id(current))
        current = _wrapped(current) or current.__cause__
    return None


def _wrapped(exc: BaseException) -> BaseException | None:
    """The exception an SDK error carries as its reason (botocore's kwargs["error"])."""
    kwargs = getattr(exc, "kwargs", None)
    wrapped = kwargs.get("error") if isinstance(kwargs, dict) else None
    return wrapped if isinstance(wrapped, BaseException) else None


def permission_denied(exc: OSError) -> PermissionDenied:
    """One line naming the file, its owner and mode, who pgvault runs as, and what to do;
    on a read-only file system, that (no chmod or chown helps there)."""
    path = exc.filename if isinstance(exc.filename, str) else None
    if path is None:
        return PermissionDenied(f"permission denied: {exc.strerror or exc}")
    me = _user_name(os.geteuid())
    found = _nearest_existing(path)
    if found is None:
        return PermissionDenied(f"permission denied on {path} (pgvault runs as {me})")
    where, st = found
    if exc.errno == errno.EROFS or _read_only_mount(where):
        return PermissionDenied(
            f"cannot write {path}: {where} is on a read-only file system; remount it "
            "read-write, or write elsewhere"
        )
    owner, mode = _user_name(st.st_uid), f"{st.st_mode & 0o7777:04o}"
    about = path if where == path else f"{path}: {where}"
    if owner == me:
        return PermissionDenied(
            f"permission denied on {about} (owned by {me}, mode {mode}): give {me} access "
            f"(chmod u+rwX {where})"
        )
    if where == path:
        remedy = f"give {me} access (chown -R {me} {where})"
    else:  # never advise handing over an existing parent (/, /var...): only what is made
        first = os.path.join(where, os.path.relpath(path, where).split(os.sep)[0])
        remedy = f"create it for {me} (mkdir -p {path} && chown -R {me} {first})"
    return PermissionDenied(
        f"permission denied on {about} (owned by {owner}:{_group_name(st.st_gid)}, mode "
        f"{mode}; pgvault runs as {me}): run pgvault as {owner}, or {remedy}"
    )


def cannot_write(path: str, exc: OSError) -> OperationFailed:
    """`cannot write PATH: reason`, or the full disk (NoSpace) or refusal (PermissionDenied)
    named as every command names them."""
    own = own_cause(OSError(exc.errno, exc.strerror, path))
    if isinstance(own, OperationFailed):
        return own
    return OperationFailed(f"cannot write {path}: {exc.strerror}")


def no_space(exc: OSError) -> NoSpace:
    """One line naming the full file system by the directory written, and what it has."""
    what = "disk quota exceeded" if exc.errno == errno.EDQUOT else "no space left on device"
    path = exc.filename if isinstance(exc.filename, str) else None
    found = _nearest_existing(os.path.dirname(os.path.abspath(path))) if path else None
    if found is None:
        return NoSpace(f"{what}: free space where pgvault writes, or write elsewhere")
    where = found[0]
    try:
        fs = os.statvfs(where)
    except OSError:
        return NoSpace(f"{what} writing in {where}: free space there, or write elsewhere")
    free, size = format_size(fs.f_bavail * fs.f_frsize), format_size(fs.f_blocks * fs.f_frsize)
    return NoSpace(
        f"{what} writing in {where} (a file system of {size}, {free} free after the "
        "attempt): free space there, or write elsewhere"
    )


def _read_only_mount(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _nearest_existing(path: str) -> tuple[str, os.stat_result] | None:
    """The path, or its nearest parent that exists, with its stat."""
    current = os.path.abspath(path)
    while True:
        try:
            return current, os.stat(current)
        except OSError:
            parent = os.path.dirname(current)
            if parent == current:
                return None
            current = parent


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
