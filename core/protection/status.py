"""Protection status: per instance its last success, next slot, RPO and health.

Thresholds come from the schedule, not a fixed age: `interval` is the longest gap
between the instance's recent slots; the newest backup is a warning once it is older
than 1.5 x interval and critical past 2 x interval (CloudNativePG's charts alert at 2x).
An instance that never succeeded is a warning until 2 x interval after it was created.
A stopped instance is a warning: nothing protects it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from core.catalog.layout import ServerLayout
from core.protection.describe import describe_policy
from core.protection.model import (
    BackupInstance,
    InstanceError,
    ProtectionState,
    RunRecord,
    RunState,
)
from core.protection.policy import BackupPolicy, BackupType, ScheduleTrigger
from core.protection.schedule import CompiledSchedule, compile_schedule
from core.protection.zones import require_aware
from core.storage import CommonPrefix, ObjectStore

#: the health `status` shows for a vault it could not read
UNAVAILABLE = "unavailable"
WARNING_FACTOR = 1.5
CRITICAL_FACTOR = 2.0
_GAPS = 8  # recent slots looked at for the interval
_TICK = timedelta(microseconds=1)


class Health(StrEnum):
    HEALTHY = "healthy"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class InstanceStatus:
    """One instance's protection now."""

    vault: str
    instance: BackupInstance
    policy_words: str
    last_success: RunRecord | None
    next_due: datetime | None
    interval: timedelta | None
    health: Health
    reason: str
    now: datetime
    #: when the newest WAL file of the server was archived (None: none, or not looked at)
    last_wal: datetime | None = None
    #: the agent's last pass could not handle the instance (None: it could, or no pass yet)
    last_error: InstanceError | None = None

    @property
    def rpo(self) -> timedelta | None:
        """The age of the newest restorable point: the last backup's end, or the newest
        WAL archived after it (WAL alone restores nothing)."""
        if self.last_success is None:
            return None
        point = self.last_success.finished or self.last_success.slot
        if self.last_wal is not None:
            point = max(point, self.last_wal)
        return self.now - point

    @property
    def wal_lag(self) -> timedelta | None:
        return None if self.last_wal is None else self.now - self.last_wal

    def to_json(self) -> dict[str, object]:
        last = self.last_success
        rpo = self.rpo
        lag = self.wal_lag
        interval = self.interval
        return {
            "backupInstance": self.instance.name,
            "health": str(self.health),
            "lastSuccess": (last.finished or last.slot).isoformat() if last else None,
            "lastBackupId": last.backup_id if last else None,
            "nextDue": self.next_due.isoformat() if self.next_due else None,
            "policy": self.instance.policy_name,
            "policyDescription": self.policy_words,
            "protectionState": str(self.instance.state),
            "reason": self.reason,
            "rpoSeconds": int(rpo.total_seconds()) if rpo is not None else None,
            "serverName": self.instance.server_name,
            "thresholds": None
            if interval is None
            else {
                "criticalAfterSeconds": int((interval * CRITICAL_FACTOR).total_seconds()),
                "warningAfterSeconds": int((interval * WARNING_FACTOR).total_seconds()),
            },
            "vault": self.vault,
            "walArchiveLagSeconds": int(lag.total_seconds()) if lag is not None else None,
            "lastWalArchived": self.last_wal.isoformat() if self.last_wal else None,
            "lastError": None if self.last_error is None else self.last_error.to_json(),
        }


def schedule_of(policy: BackupPolicy) -> CompiledSchedule | None:
    trigger = policy.backup_rule().trigger
    if not isinstance(trigger, ScheduleTrigger):
        return None
    return compile_schedule(trigger.schedule.repeating_time_intervals, trigger.schedule.time_zone)


def interval_of(schedule: CompiledSchedule, now: datetime) -> timedelta | None:
    """The longest gap between consecutive slots around now (the next one included)."""
    cursor = schedule.next_after(now)
    if cursor is None:
        cursor = schedule.last_at_or_before(now)
    gaps: list[timedelta] = []
    while cursor is not None and len(gaps) < _GAPS:
        previous = schedule.last_at_or_before(cursor - _TICK)
        if previous is None:
            break
        gaps.append(cursor - previous)
        cursor = previous
    if not gaps:  # before the schedule's start: the gaps ahead
        first = schedule.next_after(now)
        second = schedule.next_after(first) if first is not None else None
        if first is not None and second is not None:
            gaps.append(second - first)
    return max(gaps, default=None)


def instance_status(
    vault: str,
    instance: BackupInstance,
    policy: BackupPolicy,
    runs: list[RunRecord],
    now: datetime,
    last_wal: datetime | None = None,
) -> InstanceStatus:
    """Health from the newest successful run's end against the schedule's interval."""
    now = require_aware(now, "now")
    schedule = schedule_of(policy)
    interval = interval_of(schedule, now) if schedule else None
    succeeded = [r for r in runs if r.state is RunState.SUCCEEDED]
    # ends are kept to the second: two quick runs can tie, and the later slot is the newer
    last = max(succeeded, key=lambda r: (r.finished or r.slot, r.slot), default=None)
    health, reason = _health(instance, last, interval, now)
    return InstanceStatus(
        vault,
        instance,
        describe_policy(policy),
        last,
        schedule.next_after(now)
        if schedule and instance.state is ProtectionState.CONFIGURED
        else None,
        interval,
        health,
        reason,
        now,
        last_wal,
    )


def _health(
    instance: BackupInstance, last: RunRecord | None, interval: timedelta | None, now: datetime
) -> tuple[Health, str]:
    if instance.state is ProtectionState.STOPPED:
        return Health.WARNING, "protection is stopped"
    if interval is None:
        return Health.HEALTHY, "no repeating schedule: backups are taken on demand"
    if last is None:
        since = instance.created or now
        if now - since > interval * CRITICAL_FACTOR:
            return Health.CRITICAL, "no successful backup yet"
        return Health.WARNING, "no successful backup yet"
    return _by_age(now - (last.finished or last.slot), interval)


def _by_age(age: timedelta, interval: timedelta) -> tuple[Health, str]:
    if age > interval * CRITICAL_FACTOR:
        return Health.CRITICAL, f"the newest backup is older than {CRITICAL_FACTOR:g} intervals"
    if age > interval * WARNING_FACTOR:
        return Health.WARNING, f"the newest backup is older than {WARNING_FACTOR:g} intervals"
    return Health.HEALTHY, "the newest backup is within the schedule"


def newest_wal(store: ObjectStore, server: str) -> datetime | None:
    """When the server's newest WAL file was stored: the last WAL directory's newest object."""
    layout = ServerLayout(server)
    directories = [
        item.prefix
        for item in store.list_entries(layout.wals_prefix, delimiter="/")
        if isinstance(item, CommonPrefix)
    ]
    if not directories:
        return None
    times = [o.modified for o in store.list_objects(max(directories)) if o.modified is not None]
    return max(times, default=None)


@dataclass(frozen=True)
class UnavailableVault:
    """A vault whose state could not be read (its destination gone or unmounted), and why."""

    vault: str
    reason: str

    def to_json(self) -> dict[str, object]:
        return {
            "backupInstance": None,
            "health": UNAVAILABLE,
            "reason": self.reason,
            "vault": self.vault,
        }


@dataclass(frozen=True)
class StatusReport:
    """What `status` found: each readable instance's status, and the vaults it could not read."""

    instances: tuple[InstanceStatus, ...]
    unavailable: tuple[UnavailableVault, ...] = ()


def status_report(state_dir: str | None, vault: str | None, now: datetime) -> StatusReport:
    """`status`: every instance of the named vault, or of every vault this host knows; a
    vault that cannot be read is reported unavailable and the others still are."""
    from core.protection.registry import vault_names
    from core.protection.runs import failure_text

    found: list[InstanceStatus] = []
    unavailable: list[UnavailableVault] = []
    for name in vault_names(state_dir, vault):
        try:
            found += _vault_status(state_dir, name, now)
        except Exception as exc:  # one vault's destination gone must not hide the others
            unavailable.append(UnavailableVault(name, failure_text(exc)))
    return StatusReport(tuple(found), tuple(unavailable))


def _vault_status(state_dir: str | None, name: str, now: datetime) -> list[InstanceStatus]:
    from core.protection.service import opened_vault

    found = []
    with opened_vault(state_dir, name) as opened:
        for instance in opened.store.instances():
            policy = opened.store.get_policy(instance.policy_name)
            runs = list(opened.store.runs(instance.name))
            last_wal = None
            if policy.backup_rule().backup_type is not BackupType.LOGICAL:
                # WAL replays onto physical backups only: a dump's point is its own end
                last_wal = newest_wal(opened.store.store, instance.server_name)
            status = instance_status(name, instance, policy, runs, now, last_wal)
            error = opened.store.last_error(instance.name)
            found.append(replace(status, last_error=error))
    return found


__all__ = [
    "UNAVAILABLE",
    "Health",
    "InstanceStatus",
    "StatusReport",
    "UnavailableVault",
    "instance_status",
    "interval_of",
    "newest_wal",
    "schedule_of",
    "status_report",
]
