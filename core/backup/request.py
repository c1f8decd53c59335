"""The backup request: a frozen value, its validation, and how it is built from what an
operator typed (shared by `--batch backup` and the console's form).

Each field has a parser that raises a one-line InputError, so a form can check one field at
a time (inline validation) with exactly the rules the command line applies, and
`make_backup_request` applies them all together.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from core.catalog.layout import ServerLayout, validate_backup_name, validate_server_name
from core.catalog.manifest import checksum_name
from core.codecs import get_codec
from core.errors import InputError
from core.postgres.connection import ConnectionParams
from core.sizes import parse_size
from core.snapshots.request import SnapshotSource, check_source
from core.storage import StoreConfig, validate_tags
from core.tags import parse_tag, parse_tags
from core.urls import Location, parse_location

log = logging.getLogger("pgvault.backup")

GiB = 1024**3
DEFAULT_MAX_ARCHIVE_SIZE = 100 * GiB
MAX_ARCHIVE_SIZE = 1024 * GiB  # barman-cloud's cap
MAX_PORT = 65535
DEFAULT_WAL_TIMEOUT = 60.0  # seconds, as pgBackRest's archive-timeout


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
    resume: str | None = None  # a FAILED backup of this server to continue (core.backup.resume)
    incremental: str | None = None  # incremental or differential (core.backup.increment)
    incremental_from: str | None = None  # the parent's backup ID; None: the newest DONE backup
    wal_check: bool = True  # DONE only once its WAL is in the destination (core.backup.wal_check)
    wal_timeout: float = DEFAULT_WAL_TIMEOUT  # seconds for that WAL to appear there
    snapshot: SnapshotSource | None = None  # a snapshot backup of cloud disks (core.snapshots)


def validate_request(request: BackupRequest) -> None:
    """Reject bad input (exit 3) before anything is recorded or started."""
    ServerLayout(request.server)
    if request.name is not None:
        validate_backup_name(request.name)
    get_codec(request.compression)
    checksum_name(request.checksum_algorithm)
    validate_tags(request.tags)
    _check_incremental(request.incremental, request.incremental_from, request.resume)
    if request.snapshot is not None:
        check_source(request.snapshot, request.compression)
        if request.incremental or request.resume:
            raise InputError("a snapshot backup is always full: no --incremental, no resume")


def _check_incremental(kind: str | None, parent: str | None, resume: str | None) -> None:
    if kind not in (None, "incremental", "differential"):
        raise InputError(f"unknown backup kind {kind!r} (incremental or differential)")
    if parent is not None and kind != "incremental":
        raise InputError("--incremental-from names the parent of an --incremental backup")
    if kind is not None and resume is not None:
        raise InputError("a failed backup is resumed as it was started: no --incremental")


#: compressions a backup can use, in the order a form offers them (None: no compression)
BACKUP_COMPRESSIONS: tuple[str | None, ...] = (None, "gzip", "bzip2", "snappy", "lz4", "zstd")


def parse_jobs(text: str | int) -> int:
    """-J: parts uploaded in parallel, at least 1."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise InputError(f"{text!r} is not an integer") from None
    if value < 1:
        raise InputError(f"{text!r} must be at least 1")
    return value


def parse_port(text: str) -> str:
    """A TCP port number (kept as text, as libpq takes it)."""
    value = text.strip()
    if not value.isdigit() or not 0 < int(value) <= MAX_PORT:
        raise InputError(f"port {text!r} must be a number from 1 to 65535")
    return value


def parse_bandwidth(text: str) -> int | None:
    """--max-bandwidth: a size per second (barman's units); empty means no limit."""
    return parse_size(text) if text.strip() else None


def parse_destination(text: str, cloud_provider: str | None = None) -> Location:
    return parse_location(text.strip(), cloud_provider)


def parse_server_name(text: str) -> str:
    return validate_server_name(text)


def parse_backup_name(text: str) -> str | None:
    """-n/--name: empty means none."""
    return validate_backup_name(text) if text else None


def make_backup_request(  # noqa: PLR0913 - keyword-only, one per option an operator sets
    location: Location,
    server: str,
    *,
    store_config: StoreConfig | None = None,
    connection: ConnectionParams | None = None,
    compression: str | None = None,
    name: str | None = None,
    max_archive_size: int = DEFAULT_MAX_ARCHIVE_SIZE,
    immediate_checkpoint: bool = False,
    keepalive_interval: float = 60.0,
    checksum_algorithm: str = "crc32c",
    tags: Iterable[tuple[str, str]] = (),
    incremental: str | None = None,
    incremental_from: str | None = None,
    wal_check: bool = True,
    wal_timeout: float = DEFAULT_WAL_TIMEOUT,
    snapshot: SnapshotSource | None = None,
) -> BackupRequest:
    """Every rule `backup` applies to its options; InputError (exit 3) on the first broken one."""
    validate_server_name(server)
    if name is not None:
        validate_backup_name(name)
    get_codec(compression)
    checksum_name(checksum_algorithm)
    if keepalive_interval < 0:
        raise InputError("--keepalive-interval must be 0 (off) or a number of seconds")
    if not wal_timeout > 0:
        raise InputError("--wal-timeout must be a positive number of seconds")
    if max_archive_size > MAX_ARCHIVE_SIZE:
        log.warning("-S/--max-archive-size is capped at 1TB (as barman-cloud does)")
        max_archive_size = MAX_ARCHIVE_SIZE
    _check_incremental(incremental, incremental_from, None)
    config = store_config or StoreConfig()
    if config.jobs < 1:
        raise InputError(f"-J/--jobs must be at least 1, got {config.jobs}")
    return BackupRequest(
        location=location,
        server=server,
        store_config=config,
        connection=connection or ConnectionParams(),
        compression=compression,
        name=name,
        max_archive_size=max_archive_size,
        immediate_checkpoint=immediate_checkpoint,
        keepalive_interval=float(keepalive_interval),
        checksum_algorithm=checksum_algorithm,
        tags=validate_tags(tags),
        incremental=incremental,
        incremental_from=incremental_from,
        wal_check=wal_check,
        wal_timeout=float(wal_timeout),
        snapshot=snapshot,
    )


__all__ = [
    "BACKUP_COMPRESSIONS",
    "DEFAULT_MAX_ARCHIVE_SIZE",
    "DEFAULT_WAL_TIMEOUT",
    "MAX_ARCHIVE_SIZE",
    "BackupRequest",
    "make_backup_request",
    "parse_backup_name",
    "parse_bandwidth",
    "parse_destination",
    "parse_jobs",
    "parse_port",
    "parse_server_name",
    "parse_tag",
    "parse_tags",
    "validate_request",
]
