"""The verify job's result: what was checked, what could not be, and the restore drill."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.jobs.results.fields import Fields


@dataclass(frozen=True)
class VerifyJobResult:
    backup_id: str
    server: str
    written_by: str  # 'pgvault' or 'barman-cloud'
    objects: int
    bytes_read: int
    checked: tuple[str, ...]
    not_checked: tuple[str, ...]
    drill: tuple[str, ...]
    summary: str

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> VerifyJobResult:
        f = Fields(data)
        return cls(
            backup_id=f.text("backup_id"),
            server=f.text("server"),
            written_by=f.text("written_by"),
            objects=f.number("objects"),
            bytes_read=f.number("bytes_read"),
            checked=f.texts("checked"),
            not_checked=f.texts("not_checked"),
            drill=f.texts("drill"),
            summary=f.text("summary"),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "backup_id": self.backup_id,
            "server": self.server,
            "written_by": self.written_by,
            "objects": self.objects,
            "bytes_read": self.bytes_read,
            "checked": list(self.checked),
            "not_checked": list(self.not_checked),
            "drill": list(self.drill),
            "summary": self.summary,
        }
