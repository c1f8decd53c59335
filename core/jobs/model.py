"""What a job is: its states, the legal transitions between them, and its recorded facts.

States follow CockroachDB's jobs. An operator's request (pause, cancel) moves a job to a
`-requested` state; the process running it acknowledges by moving on (paused, cancelled).
Every state change in the store goes through `check_transition`, so the rules live here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from core.errors import InputError, OperationFailed
from core.jobs.results import JobDetails, JobResult

T = TypeVar("T")


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSE_REQUESTED = "pause-requested"
    PAUSED = "paused"
    CANCEL_REQUESTED = "cancel-requested"
    CANCELLED = "cancelled"
    FAILED = "failed"
    SUCCEEDED = "succeeded"

    @property
    def final(self) -> bool:
        return self in FINAL_STATES

    @property
    def active(self) -> bool:
        return self not in FINAL_STATES


FINAL_STATES = frozenset({JobState.CANCELLED, JobState.FAILED, JobState.SUCCEEDED})
ACTIVE_STATES = frozenset(JobState) - FINAL_STATES

_S = JobState
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # A pending job is a detached one whose process has not started running it yet.
    _S.PENDING: frozenset(
        {_S.RUNNING, _S.PAUSE_REQUESTED, _S.CANCEL_REQUESTED, _S.CANCELLED, _S.FAILED}
    ),
    _S.RUNNING: frozenset(
        {_S.PAUSE_REQUESTED, _S.CANCEL_REQUESTED, _S.SUCCEEDED, _S.FAILED, _S.CANCELLED}
    ),
    # Resuming before the process acknowledged the pause goes straight back to running.
    _S.PAUSE_REQUESTED: frozenset(
        {_S.PAUSED, _S.RUNNING, _S.CANCEL_REQUESTED, _S.SUCCEEDED, _S.FAILED, _S.CANCELLED}
    ),
    # A paused operation may still end: its last step may need no more checkpoints.
    _S.PAUSED: frozenset({_S.RUNNING, _S.CANCEL_REQUESTED, _S.SUCCEEDED, _S.FAILED, _S.CANCELLED}),
    # An operation that completed before it noticed the request ends succeeded, as in
    # CockroachDB; otherwise it ends cancelled (or failed if cleaning up failed).
    _S.CANCEL_REQUESTED: frozenset({_S.CANCELLED, _S.FAILED, _S.SUCCEEDED}),
    _S.CANCELLED: frozenset(),
    _S.FAILED: frozenset(),
    _S.SUCCEEDED: frozenset(),
}


class JobNotFound(InputError):
    """No job has this id in the store (exit 3: the command named something that is not there)."""


class IllegalTransition(OperationFailed):
    """The job's state does not allow the requested change (exit 1)."""


def can_transition(current: JobState, target: JobState) -> bool:
    return target in TRANSITIONS[current]


def check_transition(job_id: int, current: JobState, target: JobState, verb: str) -> None:
    """Raise a one-line IllegalTransition unless current -> target is legal."""
    if not can_transition(current, target):
        raise IllegalTransition(f"cannot {verb} job {job_id}: it is {current.value}")


def parse_state(text: str) -> JobState:
    try:
        return JobState(text.strip().lower())
    except ValueError:
        names = ", ".join(s.value for s in JobState)
        raise InputError(f"unknown job state {text!r} (one of: {names})") from None


#: SQLite's largest INTEGER: no job id is above it
MAX_JOB_ID = 2**63 - 1


def parse_job_id(text: str | int) -> int:
    """A job id as typed by an operator: a positive integer."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise InputError(f"invalid job id {text!r}: job ids are positive integers") from None
    if not 1 <= value <= MAX_JOB_ID:
        raise InputError(f"invalid job id {text!r}: job ids are integers from 1 to {MAX_JOB_ID}")
    return value


@dataclass(frozen=True)
class Job:
    """One job as the store records it; times are Unix seconds (UTC), None when not reached."""

    id: int
    kind: str
    state: JobState
    description: str = ""
    server: str | None = None
    destination: str | None = None  # Location.display(): never credentials
    options: dict[str, Any] = field(default_factory=dict, hash=False)  # secrets removed
    phase: str = ""
    bytes_done: int = 0
    bytes_total: int | None = None
    files_done: int = 0
    files_total: int | None = None
    rate: float = 0.0  # bytes/s, smoothed over the last seconds
    eta: float | None = None  # seconds
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    heartbeat: float | None = None
    pid: int | None = None
    host: str | None = None
    detached: bool = False
    error: str | None = None
    #: facts the operation recorded while it ran (the backup ID), in every state
    details: JobDetails = field(default_factory=JobDetails)
    #: the kind's typed result, once the job succeeded
    result: JobResult | None = field(default=None, hash=False)
    resumed_from: int | None = None
    rev: int = 0  # the store's change counter when this row last changed

    @property
    def fraction(self) -> float | None:
        if not self.bytes_total:
            return 1.0 if self.state is JobState.SUCCEEDED else None
        return min(1.0, self.bytes_done / self.bytes_total)

    @property
    def final(self) -> bool:
        return self.state.final

    def result_as(self, result_type: type[T]) -> T:
        """The job's result as its kind's type; OperationFailed if it has none of that type."""
        if not isinstance(self.result, result_type):
            raise OperationFailed(
                f"job {self.id} ({self.kind}, {self.state.value}) recorded no "
                f"{result_type.__name__}"
            )
        return self.result


@dataclass(frozen=True)
class LogLine:
    """One line of a job's log; seq increases within the store."""

    seq: int
    job_id: int
    at: float
    level: int
    message: str


@dataclass(frozen=True)
class JobFilter:
    """What `jobs list` selects; empty tuples and None match everything."""

    states: tuple[JobState, ...] = ()
    kinds: tuple[str, ...] = ()
    servers: tuple[str, ...] = ()
    since: float | None = None  # created at or after
    limit: int | None = None
