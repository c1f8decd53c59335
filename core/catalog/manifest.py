"""What a backup holds, file by file: checksums, PostgreSQL's `backup_manifest`, `pgvault.json`.

`backup_manifest` is written exactly as PostgreSQL's base backup writes it (version key
first, CRC32C as the host-order bytes, WAL-Ranges, a SHA-256 Manifest-Checksum over every
byte before the last line; version 2 with System-Identifier from PostgreSQL 17), so that
`pg_verifybackup` accepts a restored data directory. `pgvault.json` is pgvault's own record:
every file with the archive that holds it, every stored archive object with its size and
checksum, and what the cluster held (databases, tables) when the backup was taken.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import google_crc32c

from core.errors import InputError, StorageError
from core.postgres import versions
from core.postgres.walnames import format_lsn

CRC32C = "CRC32C"
SHA256 = "SHA256"
ALGORITHMS = {"crc32c": CRC32C, "sha256": SHA256}
PGVAULT_FORMAT = 1


# ---- checksums --------------------------------------------------------------------------------


class Checksum(Protocol):
    def update(self, data: bytes | bytearray | memoryview) -> None: ...

    def hexdigest(self) -> str: ...


class Crc32c:
    """CRC32C as PostgreSQL's manifest writes it: the uint32's bytes in host (little) order."""

    __slots__ = ("_crc",)

    def __init__(self) -> None:
        self._crc = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        # The C extension takes only bytes: a view of a whole bytes object is that object,
        # anything else is copied.
        whole = data.obj if isinstance(data, memoryview) else None
        if type(whole) is bytes and len(whole) == len(data):
            data = whole
        if type(data) is not bytes:
            data = bytes(data)
        self._crc = google_crc32c.extend(self._crc, data)

    def hexdigest(self) -> str:
        return int(self._crc).to_bytes(4, "little").hex()


class Sha256:
    __slots__ = ("_h",)

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def checksum_name(option: str) -> str:
    """'crc32c' or 'sha256' (the command-line spelling) -> the manifest's algorithm name."""
    try:
        return ALGORITHMS[option.lower()]
    except KeyError:
        raise InputError(f"unknown checksum algorithm {option!r} (crc32c or sha256)") from None


def new_checksum(algorithm: str) -> Checksum:
    if algorithm == CRC32C:
        return Crc32c()
    if algorithm == SHA256:
        return Sha256()
    raise InputError(f"unknown checksum algorithm {algorithm!r}")


def checksum_of(algorithm: str, data: bytes) -> str:
    c = new_checksum(algorithm)
    c.update(data)
    return c.hexdigest()


# ---- records --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One regular file of the backup, as restored: its path in the data directory."""

    path: str  # relative to the restored data directory, tablespaces as pg_tblspc/<oid>/...
    size: int
    mtime: float
    checksum: str
    archive: str  # the archive object's file name, e.g. data_0001.tar.zst
    offset: int  # where the file's bytes start in the uncompressed tar stream


@dataclass(frozen=True)
class ArchiveRecord:
    """One stored archive object: what it holds and the bytes that must come back."""

    filename: str  # e.g. data.tar.gz, 16384_0001.tar.gz
    name: str  # 'data' or the tablespace OID
    part: int
    size: int  # stored (compressed) bytes
    checksum: str  # of the stored bytes, with the backup's algorithm
    tar_size: int  # uncompressed tar bytes
    files: int


@dataclass(frozen=True)
class WalRange:
    timeline: int
    start_lsn: int
    end_lsn: int


@dataclass(frozen=True)
class DatabaseRecord:
    name: str
    oid: int
    size: int | None


@dataclass(frozen=True)
class TableRecord:
    database: str
    schema: str
    name: str
    kind: str  # table, partitioned table, materialized view
    persistence: str  # permanent, unlogged
    size: int | None  # pg_total_relation_size at backup time
    tablespace: str | None


# ---- PostgreSQL backup_manifest --------------------------------------------------------------


def _json_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _path_field(path: str) -> str:
    """ "Path" for UTF-8 names, "Encoded-Path" (hex of the raw bytes) otherwise, as PG does."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raw = path.encode("utf-8", "surrogateescape")
        return f'"Encoded-Path": "{raw.hex()}"'
    return f'"Path": {_json_string(path)}'


def _gmt(mtime: float) -> str:
    return datetime.fromtimestamp(int(mtime), UTC).strftime("%Y-%m-%d %H:%M:%S GMT")


def postgres_manifest(
    files: Iterable[FileRecord],
    wal_ranges: Sequence[WalRange],
    algorithm: str,
    server_version: int,
    system_identifier: str,
) -> bytes:
    """The `backup_manifest` PostgreSQL's base backup would have written for these files."""
    if server_version >= versions.WAL_SUMMARIES:
        head = (
            '{ "PostgreSQL-Backup-Manifest-Version": 2,\n'
            f'"System-Identifier": {int(system_identifier)},\n"Files": ['
        )
    else:
        head = '{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": ['
    parts = [head]
    first = True
    for record in files:
        parts.append("\n" if first else ",\n")
        first = False
        parts.append(
            f"{{ {_path_field(record.path)}, "
            f'"Size": {record.size}, '
            f'"Last-Modified": "{_gmt(record.mtime)}", '
            f'"Checksum-Algorithm": "{algorithm}", '
            f'"Checksum": "{record.checksum}" }}'
        )
    parts.append("\n],\n")
    parts.append('"WAL-Ranges": [\n')
    parts.append(
        ",\n".join(
            f'{{ "Timeline": {r.timeline}, "Start-LSN": "{format_lsn(r.start_lsn)}", '
            f'"End-LSN": "{format_lsn(r.end_lsn)}" }}'
            for r in wal_ranges
        )
    )
    parts.append("\n],\n")
    body = "".join(parts).encode("utf-8", "surrogateescape")
    digest = hashlib.sha256(body).hexdigest()
    return body + f'"Manifest-Checksum": "{digest}"}}\n'.encode()


def check_postgres_manifest(raw: bytes) -> dict[str, Any]:
    """Parse a backup_manifest and verify its Manifest-Checksum, as pg_verifybackup does."""
    end = raw.rstrip(b"\n").rfind(b"\n") + 1
    try:
        document: dict[str, Any] = json.loads(raw)
    except ValueError as exc:
        raise StorageError(f"backup_manifest is not valid JSON: {exc}") from exc
    if hashlib.sha256(raw[:end]).hexdigest() != document.get("Manifest-Checksum"):
        raise StorageError("backup_manifest checksum mismatch")
    return document


# ---- pgvault.json ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgvaultManifest:
    """pgvault's record of one backup; `state` is running, done or failed."""

    backup_id: str
    server: str
    state: str
    pgvault_version: str
    started: str
    finished: str | None = None
    lease: dict[str, Any] | None = None
    postgres: dict[str, Any] = field(default_factory=dict)
    compression: str | None = None
    compression_level: int | None = None
    checksum_algorithm: str = CRC32C
    parent_backup_id: str | None = None
    encryption: str | None = None
    tablespaces: list[dict[str, Any]] = field(default_factory=list)
    tablespace_map: str | None = None
    archives: tuple[ArchiveRecord, ...] = ()
    files: tuple[FileRecord, ...] = ()
    databases: tuple[DatabaseRecord, ...] = ()
    tables: tuple[TableRecord, ...] = ()
    excluded: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    # an incremental or differential backup: kind, parent, chain, method, per-file block maps
    # (core.backup.increment); None for a full backup, and then not written at all
    incremental: dict[str, Any] | None = None

    def archive(self, filename: str) -> ArchiveRecord | None:
        for record in self.archives:
            if record.filename == filename:
                return record
        return None


def dump_pgvault(manifest: PgvaultManifest) -> bytes:
    """pgvault.json: one file record per line so that large manifests stay diff- and grep-able."""
    head: dict[str, Any] = {"format": PGVAULT_FORMAT}
    for key, value in asdict(manifest).items():
        if key not in ("archives", "files", "databases", "tables"):
            if key == "incremental" and value is None:
                continue  # a full backup's pgvault.json is as it always was
            head[key] = value
    lines = [json.dumps(head, ensure_ascii=False, sort_keys=True)[:-1]]
    for key, items in (
        ("archives", manifest.archives),
        ("databases", manifest.databases),
        ("tables", manifest.tables),
        ("files", manifest.files),
    ):
        rows = ",\n".join(json.dumps(asdict(item), ensure_ascii=False) for item in items)
        lines.append(f', "{key}": [\n{rows}\n]' if rows else f', "{key}": []')
    return ("\n".join(lines) + "}\n").encode("utf-8", "surrogateescape")


_MAPPINGS = ("lease", "postgres", "excluded", "incremental")
_SEQUENCES = ("tablespaces", "archives", "files", "databases", "tables")


def _check_shapes(document: dict[str, Any]) -> None:
    """Containers of the right kind, so that a damaged file fails here, not in a reader."""
    for key in _MAPPINGS:
        if document.get(key) is not None and not isinstance(document[key], dict):
            raise ValueError(f"{key} is not an object")
    for key in _SEQUENCES:
        value = document.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ValueError(f"{key} is not a list of objects")


def load_pgvault(raw: bytes) -> PgvaultManifest:
    """Parse pgvault.json; a malformed file raises StorageError."""
    try:
        document: dict[str, Any] = json.loads(raw.decode("utf-8", "surrogateescape"))
        if not isinstance(document, dict) or document.pop("format", None) != PGVAULT_FORMAT:
            raise ValueError("unknown format")
        _check_shapes(document)
        return PgvaultManifest(
            **{
                **document,
                "archives": tuple(ArchiveRecord(**a) for a in document.get("archives", [])),
                "files": tuple(FileRecord(**f) for f in document.get("files", [])),
                "databases": tuple(DatabaseRecord(**d) for d in document.get("databases", [])),
                "tables": tuple(TableRecord(**t) for t in document.get("tables", [])),
            }
        )
    except (ValueError, TypeError, RecursionError) as exc:
        raise StorageError(f"unreadable pgvault.json: {exc}") from exc
