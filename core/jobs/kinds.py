"""Job kinds: what a job runs, how its request is stored, and how a worker process finds it.

A kind pairs a request (a frozen dataclass of JSON-friendly fields; sequences as tuples)
with a function `run(request, reporter) -> JobResult | None`: the kind's typed result
(core.jobs.results, where the store finds each kind's result type by name). A detached job runs in a
new process, which finds the kind again through its import path ("module:attribute"),
recorded in the job row. The request itself reaches that process through a pipe, never
through the store: it may carry credentials. The store keeps `public(request)`, the
request with every secret removed, which is what `jobs show` prints and what a resume of
a crashed job starts from (credentials then come from the environment, as usual).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import enum
import importlib
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from core.errors import InputError, OperationFailed
from core.jobs.model import Job
from core.jobs.results import JobResult
from core.progress import Reporter

R = TypeVar("R")

#: built-in kinds by name -> import path; the backup pipeline and others register here
BUILTIN: dict[str, str] = {
    "backup": "core.backup.job:BACKUP",
    "barman-hook": "core.backup.job:BARMAN_HOOK",
    "copy": "core.copy.job:COPY",
    "delete": "core.catalog.delete_job:DELETE",
    "keys": "core.keyjob:KEYS",
    "logical-backup": "core.logical.jobs:LOGICAL_BACKUP",
    "logical-restore": "core.logical.jobs:LOGICAL_RESTORE",
    "rehydrate": "core.catalog.rehydrate:REHYDRATE",
    "restore": "core.restore.job:RESTORE",
    "verify": "core.verify_job:VERIFY",
    "wal-push": "core.wal.jobs:WAL_PUSH",
    "wal-repair": "core.wal.repair_job:WAL_REPAIR",
}


@dataclass(frozen=True)
class JobInfo:
    """How a request appears in the store: what it acts on, in words and in fields."""

    description: str
    server: str | None = None
    destination: str | None = None  # Location.display(): no credentials


@dataclass(frozen=True)
class JobKind(Generic[R]):
    """One kind of long operation that runs as a job."""

    name: str
    request_type: type[R]
    run: Callable[[R, Reporter], JobResult | None]
    describe: Callable[[R], JobInfo]
    #: where this object lives ("module:attribute"), for worker processes
    entry: str
    #: the request without secrets (stored as the job's options); identity by default
    public: Callable[[R], R] = lambda request: request
    #: the request that resumes a failed job of this kind (None: not resumable)
    resume: Callable[[R, Job], R] | None = None
    #: a cancelled job is resumed too (a kind whose resume starts its work again)
    resumes_cancelled: bool = False
    #: what to do instead, for a kind that cannot be resumed
    instead_of_resume: str = "start a new one"
    #: checks the request before any job is recorded, so bad input never becomes a
    #: failed job; raises InputError (exit 3)
    validate: Callable[[R], None] | None = None

    def encode(self, request: R) -> dict[str, Any]:
        if not isinstance(request, self.request_type):
            raise TypeError(f"{self.name} jobs take {self.request_type.__name__} requests")
        return dataclasses.asdict(request)  # type: ignore[call-overload, no-any-return]

    def decode(self, data: dict[str, Any]) -> R:
        """The request from its encoded form (lists become tuples again)."""
        return _build(self.request_type, data)

    def options(self, request: R) -> dict[str, Any]:
        return self.encode(self.public(request))


def _tupled(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    if isinstance(value, dict):
        return {k: _tupled(v) for k, v in value.items()}
    return value


def _build(cls: type[R], data: dict[str, Any]) -> R:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            values[f.name] = _value(hints.get(f.name), data[f.name])
    return cls(**values)


def _value(hint: Any, value: Any) -> Any:
    """A decoded JSON value as the field's type wants it (dataclass, enum, tuple, bytes)."""
    if value is None:
        return None
    for candidate in _alternatives(hint):
        if candidate is bytes and isinstance(value, str):
            return base64.b64decode(value)  # as _json_default wrote it
        if _is_sequence_of(candidate) and isinstance(value, list):
            return tuple(_value(typing.get_args(candidate)[0], v) for v in value)
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            if isinstance(value, dict):
                return _build(candidate, value)
        elif isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            with contextlib.suppress(ValueError):
                return candidate(value)
    return _tupled(value)


def _is_sequence_of(hint: Any) -> bool:
    """tuple[X, ...]: its items decoded as X (a tuple of dataclasses)."""
    args = typing.get_args(hint)
    return typing.get_origin(hint) is tuple and len(args) == 2 and args[1] is Ellipsis  # noqa: PLR2004


def _alternatives(hint: Any) -> tuple[Any, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def load_kind(name: str, entry: str | None = None) -> JobKind[Any]:
    """The kind registered under `name`, or found at `entry` ('module:attribute')."""
    path = BUILTIN.get(name) or entry
    if not path:
        raise InputError(f"unknown job kind {name!r}")
    module_name, _, attribute = path.partition(":")
    try:
        kind = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise OperationFailed(f"cannot load the {name!r} job kind from {path}: {exc}") from None
    if not isinstance(kind, JobKind) or kind.name != name:
        raise OperationFailed(f"{path} is not the {name!r} job kind")
    return kind


def encode_request(kind: JobKind[Any], request: Any) -> str:
    """The whole request (secrets too) as the worker process reads it from its pipe."""
    return json.dumps(kind.encode(request), default=_json_default)


def _json_default(value: Any) -> Any:
    """bytes (a key's raw form) as base64 text; _value turns it back into bytes."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} cannot be sent to a job process")


def decode_request(kind: JobKind[Any], text: str) -> Any:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OperationFailed(f"malformed {kind.name} job request: {exc}") from None
    if not isinstance(data, dict):
        raise OperationFailed(f"malformed {kind.name} job request")
    return kind.decode(data)
