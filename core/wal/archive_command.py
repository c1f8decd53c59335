"""What archive_command asks of `wal-archive`: archive one file now, or through the pusher.

The face parses the command line once into a WalArchiveRequest (and, for `--async`, a
PusherRequest); everything past that point takes typed values only.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.errors import PgvaultError
from core.storage import StoreConfig, open_store
from core.urls import Location
from core.wal.archive import ArchiveResult, ArchiveSettings, WalArchiver, same_encryption

if TYPE_CHECKING:
    # Not at run time: archiving without --async loads neither the pusher nor the spool.
    from core.wal.pusher import PusherSettings


@dataclass(frozen=True)
class WalArchiveRequest:
    """Where WAL of one server goes and how it is written."""

    location: Location
    store_config: StoreConfig
    server: str
    settings: ArchiveSettings
    #: --secondary-destination: the file is acknowledged only once both stores hold it
    secondary: Location | None = None
    secondary_config: StoreConfig = field(default_factory=StoreConfig)


@dataclass(frozen=True)
class PusherRequest:
    """What a background pusher needs: the archive request, its spool and its pg_wal."""

    archive: WalArchiveRequest
    pusher: PusherSettings
    wal_dir: str
    spool: str
    state_dir: str | None = None
    #: -v/-q of the archive_command that started it (its log level)
    verbosity: int = 0


def open_secondary(request: WalArchiveRequest, light: bool = False) -> WalArchiver | None:
    """A WalArchiver on --secondary-destination, or None without one."""
    if request.secondary is None:
        return None
    store = open_store(request.secondary, request.secondary_config, light=light)
    return WalArchiver(store, request.server, request.settings)


def open_archiver(request: WalArchiveRequest, light: bool = False) -> WalArchiver:
    """A WalArchiver on the request's destination (the provider's SDK is imported here;
    light: a store for a process that archives one file and exits, see open_store)."""
    store = open_store(request.location, request.store_config, light=light)
    return WalArchiver(store, request.server, request.settings)


def archive_now(request: WalArchiveRequest, path: str) -> ArchiveResult:
    """Archive one WAL file in this process (logs what it did at INFO); with a secondary
    destination, in the primary then in the secondary, and succeed only if both did.

    A failure in the secondary fails archive_command, so PostgreSQL keeps the file and calls
    again: the primary then finds the same content and succeeds at once.
    """
    archiver = open_archiver(request, light=True)
    with archiver.store:
        result = archiver.archive(path)
        secondary = open_secondary(request, light=True)
        if secondary is None:
            return result
        with secondary.store:
            same_encryption(archiver, secondary)
            secondary.archive(path)
    return result


def archive_through_pusher(request: PusherRequest, path: str, timeout: float) -> str:
    """Hand `path` to the spool's pusher (started when none runs); return once it is stored."""
    from core.wal.spool import ArchiveSpool, archive_through_spool

    spool = ArchiveSpool(request.spool)
    return archive_through_spool(
        spool, path, timeout=timeout, start_pusher=lambda: start_pusher(request)
    )


def start_pusher(request: PusherRequest) -> None:
    """Start a detached pusher for the request's spool (it exits at once if one runs)."""
    import pickle
    import subprocess

    from core.wal.spool import ArchiveSpool

    spool = ArchiveSpool(request.spool)
    log_fd = os.open(spool.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "core.wal.daemon"],
            stdin=subprocess.PIPE,
            stdout=log_fd,
            stderr=log_fd,
            cwd="/",
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(log_fd)
    if process.stdin is None:  # pragma: no cover - stdin=PIPE always gives one
        raise PgvaultError("the pusher was started without a pipe for its request")
    process.stdin.write(pickle.dumps(request))
    process.stdin.close()
