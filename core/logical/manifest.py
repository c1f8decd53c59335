"""`logical.json`: what a logical backup holds, written last so that its presence means DONE.

Databases, each with its tables (row estimates and sizes at backup time, their indexes and
owned sequences, which a single-table restore needs), the files of its pg_dump archive,
and the versions of the server and of pg_dump that wrote it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from core.errors import InputError, OperationFailed

FORMAT = 1
KIND = "logical"
DONE = "DONE"


@dataclass(frozen=True)
class TableEntry:
    schema: str
    name: str
    rows_estimate: int | None  # pg_class.reltuples; None when never analysed
    size: int  # pg_table_size at backup time
    indexes: tuple[str, ...] = ()  # index names (same schema as the table)
    sequences: tuple[tuple[str, str], ...] = ()  # (schema, name) of the sequences it owns
    #: (schema, name) of the partitioned table it is a partition of; None for the others
    #: and in manifests older than partition tracking
    partition_of: tuple[str, str] | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def pattern(self) -> str:
        """A psql pattern naming exactly this table (double quotes keep every character)."""
        schema, name = (part.replace('"', '""') for part in (self.schema, self.name))
        return f'"{schema}"."{name}"'


def with_partitions(
    chosen: tuple[TableEntry, ...], every: tuple[TableEntry, ...]
) -> tuple[TableEntry, ...]:
    """The chosen tables and every partition (at any depth) of a chosen partitioned table:
    a partitioned table holds no rows of its own, its partitions hold them."""
    kept = {(t.schema, t.name): t for t in chosen}
    grew = True
    while grew:
        grew = False
        for table in every:
            key = (table.schema, table.name)
            if key not in kept and table.partition_of in kept:
                kept[key] = table
                grew = True
    return tuple(kept.values())


@dataclass(frozen=True)
class DumpFile:
    name: str  # as pg_dump named it: toc.dat, 4012.dat.gz, blob_16390.dat, blobs.toc
    size: int  # bytes stored
    #: SHA-256 of pg_dump's bytes (before sealing); None in manifests older than checksums
    sha256: str | None = None


@dataclass(frozen=True)
class DatabaseDump:
    name: str
    encoding: str
    size: int  # pg_database_size at backup time
    tables: tuple[TableEntry, ...]
    files: tuple[DumpFile, ...]
    #: the --table patterns the backup was limited to (empty: the whole database)
    patterns: tuple[str, ...] = ()

    @property
    def stored_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def data_size(self) -> int:
        """What the backup holds of it: the database, or a --table backup's tables."""
        return sum(t.size for t in self.tables) if self.patterns else self.size


@dataclass(frozen=True)
class LogicalManifest:
    backup_id: str
    server: str
    name: str | None
    started: str
    finished: str
    pgvault_version: str
    server_version: int  # server_version_num
    server_version_text: str
    pg_dump_version: str
    compression: str | None  # pg_dump's -Z method (gzip, lz4, zstd) or None
    jobs: int
    databases: tuple[DatabaseDump, ...]
    #: `pg_dumpall --globals-only` (roles, tablespaces) of an --all-databases backup
    globals_file: str | None = None
    #: every object of it (this manifest too) is an age file for the server's recipient
    encrypted: bool = False
    kind: str = KIND
    status: str = DONE
    format: int = FORMAT

    @property
    def stored_size(self) -> int:
        return sum(d.stored_size for d in self.databases)

    @property
    def data_size(self) -> int:
        return sum(d.data_size for d in self.databases)

    def database(self, name: str) -> DatabaseDump:
        for db in self.databases:
            if db.name == name:
                return db
        held = ", ".join(d.name for d in self.databases)
        raise InputError(
            f"logical backup {self.backup_id} holds no database {name!r} (it holds: {held})"
        )

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False).encode()


def parse_manifest(raw: bytes, where: str) -> LogicalManifest:
    """The manifest from its JSON; OperationFailed (exit 1) when it is damaged."""
    try:
        data = json.loads(raw)
        return _manifest(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise OperationFailed(f"unreadable logical backup manifest {where}: {exc}") from None


def _manifest(data: Mapping[str, Any]) -> LogicalManifest:
    if data.get("kind") != KIND:
        raise ValueError(f"kind is {data.get('kind')!r}, not {KIND!r}")
    databases = tuple(_database(d) for d in data["databases"])
    fields = {k: v for k, v in data.items() if k != "databases"}
    return LogicalManifest(databases=databases, **fields)


def _database(data: Mapping[str, Any]) -> DatabaseDump:
    return DatabaseDump(
        name=data["name"],
        encoding=data["encoding"],
        size=int(data["size"]),
        tables=tuple(
            TableEntry(
                schema=t["schema"],
                name=t["name"],
                rows_estimate=t["rows_estimate"],
                size=int(t["size"]),
                indexes=tuple(t.get("indexes", ())),
                sequences=tuple((s[0], s[1]) for s in t.get("sequences", ())),
                partition_of=_pair(t.get("partition_of")),
            )
            for t in data["tables"]
        ),
        files=tuple(DumpFile(f["name"], int(f["size"]), f.get("sha256")) for f in data["files"]),
        patterns=tuple(data.get("patterns", ())),
    )


def _pair(value: Any) -> tuple[str, str] | None:
    return None if not value else (str(value[0]), str(value[1]))
