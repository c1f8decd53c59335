"""The wal-push job's result: how many files of the batch went where."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.jobs.results.fields import Fields


@dataclass(frozen=True)
class WalPushJobResult:
    stored: int
    already_archived: int
    failed: int
    gone: int  # left the spool before the batch reached them

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> WalPushJobResult:
        f = Fields(data)
        return cls(
            stored=f.number("stored"),
            already_archived=f.number("already_archived"),
            failed=f.number("failed"),
            gone=f.number("gone"),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "stored": self.stored,
            "already_archived": self.already_archived,
            "failed": self.failed,
            "gone": self.gone,
        }
