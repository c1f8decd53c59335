"""The delete job's result: the policy's verdicts, each backup deleted and the WAL it freed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.jobs.results.fields import Fields, as_number, as_row, as_text


@dataclass(frozen=True)
class DeletedBackup:
    """One backup deleted (or, in a dry run, that would be) and the WAL that went with it."""

    backup_id: str
    status: str
    why: str
    objects: tuple[str, ...]  # keys, backup.info last
    size: int
    wal_count: int
    #: the WAL removed as runs of consecutive segments: (first, last, count)
    wal_runs: tuple[tuple[str, str, int], ...]
    wal_reason: str

    @classmethod
    def from_json(cls, f: Fields) -> DeletedBackup:
        runs = []
        for item in f.items("wal_runs"):
            first, last, count = as_row("wal_runs", item, 3)
            runs.append(
                (
                    as_text("wal_runs", first),
                    as_text("wal_runs", last),
                    as_number("wal_runs", count),
                )
            )
        return cls(
            backup_id=f.text("backup_id"),
            status=f.text("status"),
            why=f.text("why"),
            objects=f.texts("objects"),
            size=f.number("size"),
            wal_count=f.number("wal_count"),
            wal_runs=tuple(runs),
            wal_reason=f.text("wal_reason"),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "backup_id": self.backup_id,
            "status": self.status,
            "why": self.why,
            "objects": list(self.objects),
            "size": self.size,
            "wal_count": self.wal_count,
            "wal_runs": [list(run) for run in self.wal_runs],
            "wal_reason": self.wal_reason,
        }


@dataclass(frozen=True)
class DeleteJobResult:
    server: str
    dry_run: bool
    policy: str | None  # the retention policy evaluated (None for one backup by ID)
    now: str | None  # ISO 8601: the moment the policy was evaluated at
    statuses: tuple[tuple[str, str], ...]  # (backup ID, the policy's verdict), oldest first
    deleted: tuple[DeletedBackup, ...]
    skipped: tuple[str, ...]  # one line each: why a backup was left alone

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> DeleteJobResult:
        f = Fields(data)
        return cls(
            server=f.text("server"),
            dry_run=f.flag("dry_run"),
            policy=f.optional_text("policy"),
            now=f.optional_text("now"),
            statuses=f.pairs("statuses"),
            deleted=tuple(DeletedBackup.from_json(item) for item in f.objects("deleted")),
            skipped=f.texts("skipped"),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "server": self.server,
            "dry_run": self.dry_run,
            "policy": self.policy,
            "now": self.now,
            "statuses": [list(item) for item in self.statuses],
            "deleted": [item.to_json() for item in self.deleted],
            "skipped": list(self.skipped),
        }
