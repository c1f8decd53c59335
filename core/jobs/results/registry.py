"""Which result type each job kind has, and how a job's `result` column is written and read.

The column holds one JSON object: the facts the operation noted while it ran merged with
its kind's result once it succeeded, keys sorted. Reading the store finds the result type
by the kind's name, here rather than through the kind (reading jobs must not import the
backup engine); a kind without one, or a record this version cannot type, reads back as
JsonResult, the object as stored.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from core.jobs.results.backup import BackupJobResult
from core.jobs.results.copy import CopyJobResult
from core.jobs.results.delete import DeleteJobResult
from core.jobs.results.details import DETAIL_KEYS, JobDetails
from core.jobs.results.fields import MalformedResult
from core.jobs.results.keys import KeysJobResult
from core.jobs.results.logical import LogicalJobResult
from core.jobs.results.rehydrate import RehydrateJobResult
from core.jobs.results.restore import RestoreJobResult
from core.jobs.results.verify import VerifyJobResult
from core.jobs.results.wal_push import WalPushJobResult
from core.jobs.results.wal_repair import WalRepairJobResult


class JobResult(Protocol):
    """A kind's typed result: what `JobKind.run` returns and the store records."""

    def to_json(self) -> dict[str, object]: ...


class ResultType(Protocol):
    """A result class: reads its stored JSON object back (a classmethod)."""

    def from_json(self, data: Mapping[str, object]) -> JobResult: ...


class JsonResult(Mapping[str, object]):
    """The result of a kind with no result type here, as a read-only JSON object."""

    def __init__(self, data: Mapping[str, object] | None = None) -> None:
        self._data = dict(data or {})

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> JsonResult:
        return cls(data)

    def to_json(self) -> dict[str, object]:
        return dict(self._data)

    def __getitem__(self, key: str) -> object:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"JsonResult({self._data!r})"


#: each built-in kind's result type, by kind name (core.jobs.kinds.BUILTIN names the kinds)
RESULT_TYPES: dict[str, ResultType] = {
    "backup": BackupJobResult,
    "barman-hook": BackupJobResult,
    "copy": CopyJobResult,
    "delete": DeleteJobResult,
    "keys": KeysJobResult,
    "logical-backup": LogicalJobResult,
    "logical-restore": LogicalJobResult,
    "rehydrate": RehydrateJobResult,
    "restore": RestoreJobResult,
    "verify": VerifyJobResult,
    "wal-push": WalPushJobResult,
    "wal-repair": WalRepairJobResult,
}


@dataclass(frozen=True)
class ResultRecord:
    """What a job's `result` column holds: its details, and its kind's result once it succeeded."""

    details: JobDetails = field(default_factory=JobDetails)
    result: JobResult | None = None

    def to_json(self) -> dict[str, object]:
        """The object the store records and `jobs show --format json` prints, keys sorted."""
        own = self.result.to_json() if self.result is not None else {}
        return _sorted({**self.details.to_json(), **own})


def read_result(kind: str, data: Mapping[str, object], succeeded: bool) -> ResultRecord:
    """A stored result object as the job's details and (once it succeeded) its kind's result."""
    if not succeeded:
        return ResultRecord(JobDetails.from_json(data))
    result: JobResult
    try:
        result = RESULT_TYPES.get(kind, JsonResult).from_json(data)
    except MalformedResult:
        result = JsonResult(data)  # shown as it was stored rather than not at all
    own = result.to_json().keys()
    facts = {k: v for k, v in data.items() if k not in own or k in DETAIL_KEYS}
    return ResultRecord(JobDetails.from_json(facts), result)


def _sorted(value: Mapping[str, object]) -> dict[str, object]:
    # The store writes with sort_keys: the same order at every depth, whoever reads it.
    return {key: _sorted_any(value[key]) for key in sorted(value)}


def _sorted_any(value: object) -> object:
    if isinstance(value, Mapping):
        return _sorted(value)
    if isinstance(value, list | tuple):
        return [_sorted_any(item) for item in value]
    return value
