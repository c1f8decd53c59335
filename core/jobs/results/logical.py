"""The logical backup and restore jobs' result: the backup, the database, what moved."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.jobs.results.fields import Fields


@dataclass(frozen=True)
class LogicalJobResult:
    backup_id: str
    database: str
    #: a restore: the database written into (None for a backup)
    target_database: str | None
    #: a backup: how many tables; a restore: the tables restored (empty: the whole database)
    tables: tuple[str, ...]
    bytes: int  # stored (backup) or downloaded (restore)
    tool: str  # the pg_dump or pg_restore that ran, as its --version printed
    summary: str

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> LogicalJobResult:
        f = Fields(data)
        return cls(
            backup_id=f.text("backup_id"),
            database=f.text("database"),
            target_database=f.optional_text("target_database"),
            tables=f.texts("tables"),
            bytes=f.number("bytes"),
            tool=f.text("tool"),
            summary=f.text("summary"),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "backup_id": self.backup_id,
            "database": self.database,
            "target_database": self.target_database,
            "tables": list(self.tables),
            "bytes": self.bytes,
            "tool": self.tool,
            "summary": self.summary,
        }
