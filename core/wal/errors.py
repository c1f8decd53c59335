"""Errors of the WAL commands; each keeps the exit code barman-cloud's contract gives it."""

from __future__ import annotations

from core.errors import ExitCode, IntegrityError, ObjectNotFound, OperationFailed, PgvaultError


class WalRejected(OperationFailed):
    """A file handed to archive_command is not a valid WAL file of that name (exit 1)."""


class WalConflict(OperationFailed):
    """The archive already holds different bytes under this WAL name; nothing was changed."""


class WalNotFound(ObjectNotFound):
    """The WAL file is not in the archive: PostgreSQL's normal end of the archive (exit 1)."""


class WalCorrupt(IntegrityError):
    """An archived WAL object failed verification and was not handed over (exit 4)."""

    exit_code = ExitCode.OTHER


class LocalIOError(PgvaultError):
    """A local file or directory could not be read or written (exit 4)."""


class ArchiveMissing(PgvaultError):
    """The bucket, container or directory is missing: loud, and never 'not found' (1)."""

    exit_code = ExitCode.OTHER


class ArchiveNotUsable(OperationFailed):
    """check-wal-archive: the archive holds WAL that a new server must not mix with."""


class ArchiveGaps(OperationFailed):
    """check-wal-archive --gaps: a backup lacks a WAL segment it needs."""
