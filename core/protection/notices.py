"""What the agent tells people about, and the rule that it tells them once per change.

A notice has a fingerprint naming the condition it reports: the first failed run of a
streak, a backup whose deletion failed, a health level reached since a given last backup,
the newest archived WAL that is too old, one set of retention deletions. While the condition
stays the same, so does the fingerprint; the agent sends a notice only when it creates
its record (`NoticeStore.claim`, a conditional write), so neither a second pass nor a
second agent sends it again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from core.errors import ObjectExists
from core.protection.jsondoc import dumps
from core.protection.model import RunRecord, RunState, utc_text
from core.protection.status import Health, InstanceStatus
from core.secrets import redact
from core.storage import PutOptions

if TYPE_CHECKING:
    from core.protection.vaultstore import VaultStore


#: the policy's data stores (retention outcomes at an instance's secondary name its URL)
_STORES = ("VaultStore", "ArchiveStore")


class RetentionOutcome(Protocol):
    """One lifecycle step's result, as the agent reports it (agent.RetentionOutcome)."""

    @property
    def instance(self) -> str: ...
    @property
    def backup_id(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def store(self) -> str: ...
    @property
    def result(self) -> str: ...
    @property
    def reason(self) -> str | None: ...


class Event(StrEnum):
    JOB_FAILED = "job-failed"
    INSTANCE_FAILED = "instance-failed"
    PROTECTION_STALE = "protection-stale"
    WAL_LAG = "wal-lag"
    RETENTION = "retention"


class Severity(StrEnum):
    """apprise's notify types (protection-model §6): a receiver colours and files by them."""

    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"


@dataclass(frozen=True)
class Notice:
    """One message about one instance; `fingerprint` names the condition it reports."""

    event: Event
    instance: str
    fingerprint: str
    title: str
    body: str
    severity: Severity = Severity.INFO

    @property
    def key_name(self) -> str:
        digest = hashlib.sha256(self.fingerprint.encode()).hexdigest()[:16]
        return f"{self.event}-{digest}.json"


def _when(run: RunRecord) -> datetime:
    return run.finished or run.slot


def job_failed(instance: str, runs: Iterable[RunRecord]) -> Notice | None:
    """The instance's newest ended run failed: one notice per streak of failures."""
    ended = sorted((r for r in runs if r.state is not RunState.CLAIMED), key=_when)
    if not ended or ended[-1].state is not RunState.FAILED:
        return None
    streak: list[RunRecord] = []
    for run in reversed(ended):
        if run.state is not RunState.FAILED:
            break
        streak.insert(0, run)
    first, last = streak[0], streak[-1]
    job = f" (job {last.job_id})" if last.job_id else ""
    return Notice(
        Event.JOB_FAILED,
        instance,
        f"backup-streak-{utc_text(first.slot)}-{first.trigger}",
        f"pgvault: backup of {instance} failed",
        redact(
            f"The {last.trigger} backup of {instance} for slot {utc_text(last.slot)}{job} "
            f"failed: {last.error or 'no error recorded'}. Runs failed in a row: {len(streak)}."
        ),
        Severity.FAILURE,
    )


def taken_over(run: RunRecord) -> Notice:
    """A claim whose holder died mid-backup, taken over and run again: once per claim."""
    state = {RunState.CLAIMED: "is running again", RunState.SUCCEEDED: "ran again"}
    return Notice(
        Event.JOB_FAILED,
        run.instance,
        f"abandoned-{utc_text(run.slot)}-{run.trigger}-{run.abandoned}",
        f"pgvault: backup of {run.instance} was abandoned mid-way",
        redact(
            f"The {run.trigger} backup of {run.instance} for slot {utc_text(run.slot)} was "
            f"{run.abandoned}. The slot was taken over by {run.claimed_by} and "
            f"{state.get(run.state, 'ran again and failed')}."
        ),
        Severity.FAILURE if run.state is RunState.FAILED else Severity.WARNING,
    )


def instance_failed(instance: str, error: str, now: datetime) -> Notice:
    """The agent could not handle an instance in a pass: once per distinct error."""
    return Notice(
        Event.INSTANCE_FAILED,
        instance,
        f"instance-error-{error}",
        f"pgvault: the agent could not protect {instance}",
        redact(
            f"The agent's pass at {utc_text(now)} failed for {instance}: {error}. The vault's "
            "other instances were handled. It is tried again on every pass; this is said "
            "once per error."
        ),
        Severity.FAILURE,
    )


def delete_failed(outcome: RetentionOutcome) -> Notice:
    """A retention delete job failed: once per backup."""
    return Notice(
        Event.JOB_FAILED,
        outcome.instance,
        # a secondary destination's deletion (--secondary-retention follow) is its own notice
        f"delete-{outcome.backup_id}" + ("" if outcome.store in _STORES else "-secondary"),
        f"pgvault: deleting backup {outcome.backup_id} of {outcome.instance} failed",
        redact(
            f"Retention could not delete backup {outcome.backup_id} of {outcome.instance} "
            f"({outcome.store}): {outcome.reason or 'no error recorded'}. It is retried on "
            "every pass; this is said once."
        ),
        Severity.FAILURE,
    )


def stale(status: InstanceStatus) -> Notice | None:
    """Health warning or critical: once per level per newest successful backup.

    A new instance that has no backup yet and is still within its grace is not reported.
    """
    if status.health is Health.HEALTHY:
        return None
    last = status.last_success
    if last is None and status.health is Health.WARNING:
        return None
    newest = (last.backup_id or utc_text(last.slot)) if last else "none"
    rpo = status.rpo
    age = f"; RPO {_words(rpo)}" if rpo is not None else ""
    return Notice(
        Event.PROTECTION_STALE,
        status.instance.name,
        f"{status.health}-{newest}",
        f"pgvault: protection of {status.instance.name} is {status.health}",
        f"{status.instance.name} in vault {status.vault} is {status.health}: {status.reason}"
        f" (newest backup: {newest}{age}; policy {status.instance.policy_name}: "
        f"{status.policy_words}).",
        Severity.FAILURE if status.health is Health.CRITICAL else Severity.WARNING,
    )


def wal_lag(status: InstanceStatus, threshold: timedelta) -> Notice | None:
    """The newest archived WAL is older than the vault's threshold: once per newest WAL."""
    lag = status.wal_lag
    if lag is None or status.last_wal is None or lag <= threshold:
        return None
    return Notice(
        Event.WAL_LAG,
        status.instance.name,
        f"wal-{utc_text(status.last_wal)}",
        f"pgvault: WAL archiving of {status.instance.name} is {_words(lag)} behind",
        f"The newest WAL of server {status.instance.server_name} was archived at "
        f"{utc_text(status.last_wal)}, {_words(lag)} ago (threshold {_words(threshold)}).",
        Severity.WARNING,
    )


def retention(instance: str, outcomes: Sequence[RetentionOutcome]) -> Notice | None:
    """What retention deleted (or failed to delete) in this pass, with what it held.

    Only deletions make a notice (a held step is held again on every pass): once per
    distinct set of them.
    """
    acted = sorted(
        (o.backup_id, o.action, o.store, o.result) for o in outcomes if o.result != "held"
    )
    if not acted:
        return None
    counts = {r: sum(1 for o in outcomes if o.result == r) for r in ("done", "held", "failed")}
    lines = [
        f"- {o.action} {o.backup_id} ({o.store}): {o.result}"
        + (f": {o.reason}" if o.reason else "")
        for o in outcomes
    ]
    summary = ", ".join(f"{n} {r}" for r, n in counts.items() if n)
    return Notice(
        Event.RETENTION,
        instance,
        "retention-" + ";".join(",".join(fact) for fact in acted),
        f"pgvault: retention of {instance}: {summary}",
        redact(f"Retention of {instance}:\n" + "\n".join(lines)),
        Severity.FAILURE if counts["failed"] else Severity.SUCCESS,
    )


def _words(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


class NoticeStore:
    """The notices of a vault, one small JSON record each, created at most once."""

    def __init__(self, vault: VaultStore) -> None:
        self.vault = vault

    def _key(self, notice: Notice) -> str:
        return f"{self.vault.notices_prefix(notice.instance)}{notice.key_name}"

    def claim(self, notice: Notice, now: datetime, who: str) -> bool:
        """Record the notice; False when it was recorded before (by this or another agent)."""
        document = self._document(notice, now, who, [])
        try:
            self.vault.store.put_bytes(
                self._key(notice), dumps(document).encode(), PutOptions(if_absent=True)
            )
        except ObjectExists:
            return False
        return True

    def record(
        self, notice: Notice, now: datetime, who: str, deliveries: list[dict[str, str]]
    ) -> None:
        """Rewrite a claimed notice with how each delivery went (URLs redacted)."""
        document = self._document(notice, now, who, deliveries)
        self.vault.store.put_bytes(self._key(notice), dumps(document).encode())

    @staticmethod
    def _document(
        notice: Notice, now: datetime, who: str, deliveries: list[dict[str, str]]
    ) -> dict[str, object]:
        return {
            "at": utc_text(now),
            "claimedBy": who,
            "deliveries": deliveries,
            "event": str(notice.event),
            "instance": notice.instance,
            "objectType": "PgvaultNotice",
            "title": redact(notice.title),
        }


__all__ = [
    "Event",
    "Notice",
    "NoticeStore",
    "delete_failed",
    "instance_failed",
    "job_failed",
    "retention",
    "stale",
    "taken_over",
    "wal_lag",
]
