"""The restore job's result: where the backup went, and the report `restore -v` prints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.jobs.results.fields import Fields


@dataclass(frozen=True)
class RestoreJobResult:
    backup_id: str
    recovery_dir: str
    tablespaces: tuple[tuple[str, str], ...]  # (name, where it was restored)
    files: int
    bytes_written: int
    bytes_downloaded: int
    target: str
    credentials_file: str | None
    wal_restore_dir: str
    warnings: tuple[str, ...]
    summary: str
    #: the lines for operators: the summary, what was verified, warnings, what to do next
    report: tuple[str, ...]
    #: a delta restore's files (and their bytes) found in place as recorded, not written;
    #: in the JSON of delta restores only (older records and plain restores have none)
    kept_files: int | None = None
    kept_bytes: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> RestoreJobResult:
        f = Fields(data)
        return cls(
            backup_id=f.text("backup_id"),
            recovery_dir=f.text("recovery_dir"),
            tablespaces=f.pairs("tablespaces"),
            files=f.number("files"),
            bytes_written=f.number("bytes_written"),
            bytes_downloaded=f.number("bytes_downloaded"),
            target=f.text("target"),
            credentials_file=f.optional_text("credentials_file"),
            wal_restore_dir=f.text("wal_restore_dir"),
            warnings=f.texts("warnings"),
            summary=f.text("summary"),
            report=f.texts("report"),
            kept_files=f.number("kept_files") if "kept_files" in data else None,
            kept_bytes=f.number("kept_bytes") if "kept_bytes" in data else None,
        )

    def to_json(self) -> dict[str, object]:
        kept = {"kept_files": self.kept_files, "kept_bytes": self.kept_bytes}
        return {
            "backup_id": self.backup_id,
            "recovery_dir": self.recovery_dir,
            "tablespaces": [list(t) for t in self.tablespaces],
            "files": self.files,
            "bytes_written": self.bytes_written,
            "bytes_downloaded": self.bytes_downloaded,
            "target": self.target,
            "credentials_file": self.credentials_file,
            "wal_restore_dir": self.wal_restore_dir,
            "warnings": list(self.warnings),
            "summary": self.summary,
            "report": list(self.report),
            **({} if self.kept_files is None else kept),
        }
