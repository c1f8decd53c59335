"""The facts an operation notes while it runs (`Reporter.detail`), known before it ends.

A backup records its ID as soon as it has one, so a failed backup can be resumed and the
console names the backup of a running job. Facts of kinds this version has no field for
are kept as they were recorded, in `other`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class JobDetails:
    """Facts recorded while the job ran; None when not (yet) recorded."""

    backup_id: str | None = None
    #: a resumed backup: bytes of data, and of stored objects, kept from the failed one
    reused_bytes: int | None = None
    reused_stored_bytes: int | None = None
    #: a logical restore: tables whose data pg_restore -j finished loading, so far
    tables_loaded: int | None = None
    other: Mapping[str, object] = field(default_factory=dict, hash=False)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> JobDetails:
        """The known facts typed; anything else (or mistyped) kept in `other`."""
        return cls(
            backup_id=_text(data.get("backup_id")),
            reused_bytes=_number(data.get("reused_bytes")),
            reused_stored_bytes=_number(data.get("reused_stored_bytes")),
            tables_loaded=_number(data.get("tables_loaded")),
            other={k: v for k, v in data.items() if not _typed(k, v)},
        )

    def to_json(self) -> dict[str, object]:
        facts = {
            "backup_id": self.backup_id,
            "reused_bytes": self.reused_bytes,
            "reused_stored_bytes": self.reused_stored_bytes,
            "tables_loaded": self.tables_loaded,
        }
        return {**{k: v for k, v in facts.items() if v is not None}, **self.other}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: object) -> int | None:
    # bool is an int to Python, not to JSON.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _typed(key: str, value: object) -> bool:
    """Whether `value` goes into JobDetails' own field `key` (else into `other`)."""
    if key == "backup_id":
        return _text(value) is not None
    return key in DETAIL_KEYS and _number(value) is not None


#: the keys JobDetails has a field for
DETAIL_KEYS = frozenset({"backup_id", "reused_bytes", "reused_stored_bytes", "tables_loaded"})
