"""The wal-repair job's result: the segments archived again and the ranges still lost."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.jobs.results.fields import Fields


@dataclass(frozen=True)
class WalRepairJobResult:
    server: str
    gaps_found: int
    missing: int  # segments missing before the repair
    repaired: tuple[str, ...]
    lost: tuple[str, ...]  # one line per range still missing (core.wal.repair.lost_lines)
    source: str  # where pg_wal was read
    summary: str

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> WalRepairJobResult:
        f = Fields(data)
        return cls(
            server=f.text("server"),
            gaps_found=f.number("gaps_found"),
            missing=f.number("missing"),
            repaired=f.texts("repaired"),
            lost=f.texts("lost"),
            source=f.text("source"),
            summary=f.text("summary"),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "server": self.server,
            "gaps_found": self.gaps_found,
            "missing": self.missing,
            "repaired": list(self.repaired),
            "lost": list(self.lost),
            "source": self.source,
            "summary": self.summary,
        }
