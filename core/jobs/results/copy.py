"""The copy job's result: what reached the target, what was already there."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.jobs.results.fields import Fields


@dataclass(frozen=True)
class CopyJobResult:
    target: str  # the target URL without credentials
    physical: tuple[str, ...]  # backup IDs copied or found complete, oldest first
    logical: tuple[str, ...]
    wal_files: int
    copied: int  # objects written and verified
    skipped: int  # objects already on the target with the same size and SHA-256
    bytes_copied: int
    summary: str
    #: what went wrong beside the copy (the source's copies record not written)
    warnings: tuple[str, ...] = ()
    #: bytes of uploads a killed run left that this one continued, not sent again
    reused_stored_bytes: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> CopyJobResult:
        f = Fields(data)
        return cls(
            target=f.text("target"),
            physical=f.texts("physical"),
            logical=f.texts("logical"),
            wal_files=f.number("wal_files"),
            copied=f.number("copied"),
            skipped=f.number("skipped"),
            bytes_copied=f.number("bytes_copied"),
            summary=f.text("summary"),
            warnings=f.texts("warnings") if "warnings" in data else (),
            reused_stored_bytes=f.number("reused_stored_bytes")
            if "reused_stored_bytes" in data
            else 0,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "physical": list(self.physical),
            "logical": list(self.logical),
            "wal_files": self.wal_files,
            "copied": self.copied,
            "skipped": self.skipped,
            "bytes_copied": self.bytes_copied,
            "summary": self.summary,
            "warnings": list(self.warnings),
            "reused_stored_bytes": self.reused_stored_bytes,
        }
