"""The facts an operation notes while it runs (`Reporter.detail`), known before it ends.

A backup records its ID as soon as it has one, so a failed backup can be resumed and the
console names the backup of a running job. Facts of kinds this version has no field for
are kept as they were recorded, in `other`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class JobDetails:
    """Facts recorded while the job ran; None when not (yet) recorded."""

    backup_id: str | None = None
    #: a resumed backup: bytes of data, and of stored objects, kept from the failed one
    reused_bytes: int | None = None
    reused_stored_bytes: int | None = None
    other: Mapping[str, object] = field(default_factory=dict, hash=False)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> JobDetails:
        """The known facts typed; anything else (or mistyped) kept in `other`."""
        known: dict[str, str | int] = {}
        other: dict[str, object] = {}
        for key, value in data.items():
            if _typed(key, value):
                known[key] = value  # type: ignore[assignment]
            else:
                other[key] = value
        return cls(**known, other=other)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, object]:
        facts: dict[str, object] = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "other" and getattr(self, f.name) is not None
        }
        return {**facts, **self.other}


def _typed(key: str, value: object) -> bool:
    """Whether the value is what JobDetails' field `key` holds."""
    if key in _TEXT:
        return isinstance(value, str)
    return key in _NUMBER and isinstance(value, int) and not isinstance(value, bool)


_TEXT = frozenset({"backup_id"})
_NUMBER = frozenset({"reused_bytes", "reused_stored_bytes"})
#: the keys JobDetails has a field for
DETAIL_KEYS = _TEXT | _NUMBER
