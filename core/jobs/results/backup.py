"""The backup job's result: the backup it took and a one-line summary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.jobs.results.fields import Fields


@dataclass(frozen=True)
class BackupJobResult:
    backup_id: str
    status: str  # backup.info's status: DONE
    files: int
    bytes_read: int
    bytes_stored: int
    begin_wal: str
    end_wal: str
    summary: str  # one line for operators (`backup -v` prints it)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> BackupJobResult:
        f = Fields(data)
        return cls(
            backup_id=f.text("backup_id"),
            status=f.text("status"),
            files=f.number("files"),
            bytes_read=f.number("bytes_read"),
            bytes_stored=f.number("bytes_stored"),
            begin_wal=f.text("begin_wal"),
            end_wal=f.text("end_wal"),
            summary=f.text("summary"),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "backup_id": self.backup_id,
            "status": self.status,
            "files": self.files,
            "bytes_read": self.bytes_read,
            "bytes_stored": self.bytes_stored,
            "begin_wal": self.begin_wal,
            "end_wal": self.end_wal,
            "summary": self.summary,
        }
