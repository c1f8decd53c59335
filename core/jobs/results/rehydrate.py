"""The rehydrate job's result: which archived backups are back in the normal tier."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.jobs.results.fields import Fields


@dataclass(frozen=True)
class RehydrateJobResult:
    backup_id: str
    #: the backups that were archived and are online again (the backup, then its parents)
    rehydrated: tuple[str, ...]
    objects: int
    summary: str

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> RehydrateJobResult:
        f = Fields(data)
        return cls(
            backup_id=f.text("backup_id"),
            rehydrated=f.texts("rehydrated"),
            objects=f.number("objects"),
            summary=f.text("summary"),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "backup_id": self.backup_id,
            "rehydrated": list(self.rehydrated),
            "objects": self.objects,
            "summary": self.summary,
        }
