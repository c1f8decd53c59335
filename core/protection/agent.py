"""The scheduler agent: run each instance's due slot once, then apply its lifecycles.

One pass (`run_pass`) is what `agent --once` does; `agent` repeats it. Decisions use the
functions simulate() uses (schedule.due, tagging.choose_tag, plan_retention), against the
clock given. A missed slot is caught up once (due() returns only the latest). Another
agent's claim of a slot (vaultstore.claim_run, a conditional write) makes this one skip it.
The retention lifecycles (move, copy, delete) are core.protection.lifecycles'. After the
pass, notify.notify_pass tells the vault's and instances' URLs what changed.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from core.catalog.reader import Catalog
from core.errors import PgvaultError
from core.jobs import JobStore
from core.protection.chain_rule import slot_kind
from core.protection.lifecycles import RetentionOutcome, apply_retention, secondary_failures
from core.protection.locks import wal_not_locked
from core.protection.model import (
    BackupInstance,
    InstanceError,
    ProtectionState,
    RunState,
    RunTrigger,
)
from core.protection.notify import NoticeOutcome, PassFacts, notify_pass
from core.protection.policy import BackupPolicy, BackupType, ScheduleTrigger
from core.protection.registry import vault_names
from core.protection.runs import (
    RunOutcome,
    failure_text,
    redo_interrupted_copies,
    take_backup,
    take_over_abandoned,
)
from core.protection.schedule import compile_schedule
from core.protection.service import OpenVault
from core.protection.stopping import stop_reason
from core.protection.tagging import adhoc_tag, choose_tag
from core.protection.zones import get_zone, require_aware

log = logging.getLogger("pgvault.protection")


def agent_id() -> str:
    """Who claims a slot: host and process, for the run record."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class PassReport:
    """What one pass over a vault did."""

    vault: str
    now: datetime
    runs: list[RunOutcome] = field(default_factory=list)
    retention: list[RetentionOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: the notices this agent sent in this pass (each is sent once, by one agent)
    notifications: list[NoticeOutcome] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """A run failed, an instance could not be handled, or a retention step (a deletion,
        a copy) failed; a held one is not a failure."""
        if self.errors or any(r.result == "failed" for r in self.retention):
            return True
        return any(r.record is not None and r.record.error for r in self.runs)

    def to_json(self) -> dict[str, object]:
        return {
            "errors": list(self.errors),
            "notifications": [item.to_json() for item in self.notifications],
            "now": self.now.isoformat(),
            "retention": [item.to_json() for item in self.retention],
            "runs": [run.to_json() for run in self.runs],
            "vault": self.vault,
        }


def run_pass(vault: OpenVault, jobs: JobStore, now: datetime, who: str) -> PassReport:
    """Every protected instance of the vault: its due slot, then its retention."""
    now = require_aware(now, "now")
    report = PassReport(vault.store.name, now)
    instances = vault.store.instances()
    failures: list[tuple[str, str]] = []
    for instance in instances:
        if stop_reason() is not None:  # stopped: nothing more is started
            return report
        if instance.state is not ProtectionState.CONFIGURED:
            continue
        try:
            before = len(report.errors)
            _pass_instance(vault, jobs, instance, report, who)
            _keep_error(vault, instance.name, report, report.errors[before:], who)
            continue
        except Exception as exc:  # one instance's trouble, even a bug, must not stop the others
            error = failure_text(exc)
            log.error("%s: %s", instance.name, error)
        failures.append((instance.name, error))
        report.errors.append(f"{instance.name}: {error}")
        _keep_error(vault, instance.name, report, [error], who)
    if stop_reason() is not None:  # the next pass tells what this one left
        return report
    try:
        facts = PassFacts(report.now, tuple(report.retention), tuple(failures))
        report.notifications = notify_pass(vault, facts, who, instances)
    except PgvaultError as exc:  # a vault that cannot record notices still did its backups
        log.error("notifications: %s", exc)
        report.errors.append(f"notifications: {exc}")
    return report


def _keep_error(
    vault: OpenVault, instance: str, report: PassReport, errors: list[str], who: str
) -> None:
    """Record the instance's errors of this pass for `status` (or clear an older one): a
    failure outside a slot's run has no run record to say it."""
    try:
        if errors:
            error = InstanceError(instance, report.now, "; ".join(errors), who)
            vault.store.record_error(error)
        else:
            vault.store.clear_error(instance)
    except PgvaultError as exc:  # the pass's own report still says it
        log.error("%s: cannot record its error for status: %s", instance, exc)


def _pass_instance(
    vault: OpenVault, jobs: JobStore, instance: BackupInstance, report: PassReport, who: str
) -> None:
    """One instance's part of a pass: the copies a stopped agent cancelled, its due slot,
    then its retention."""
    now = report.now
    policy = vault.store.get_policy(instance.policy_name)
    redone = redo_interrupted_copies(vault, jobs, instance)
    ran = [] if stop_reason() else run_due_slot(vault, jobs, instance, policy, now, who)
    for outcome in [*redone, *ran]:
        report.runs.append(outcome)
        report.errors += wal_not_locked(vault, instance.server_name, outcome.record, now)
        copied = outcome.secondary_copy
        if copied is not None and copied.error:
            report.errors.append(f"{instance.name}: copy to {copied.target}: {copied.error}")
    if stop_reason() is not None:
        return
    outcomes = apply_retention(vault, jobs, instance, policy, now)
    report.retention.extend(outcomes)
    report.errors += secondary_failures(instance, outcomes)


def run_due_slot(
    vault: OpenVault,
    jobs: JobStore,
    instance: BackupInstance,
    policy: BackupPolicy,
    now: datetime,
    who: str,
) -> list[RunOutcome]:
    """Run the instance's latest due slot (once, whoever claims it first), after taking
    over the claims whose holder is gone (the newest slot's runs again when no later is due)."""
    rule = policy.backup_rule()
    trigger = rule.trigger
    runs = [r for r in vault.store.runs(instance.name) if r.trigger is RunTrigger.SCHEDULED]
    since = max((r.slot for r in runs), default=instance.created or now)
    if not isinstance(trigger, ScheduleTrigger):
        return take_over_abandoned(vault, jobs, instance, who, None, lambda _: None)
    schedule = compile_schedule(
        trigger.schedule.repeating_time_intervals, trigger.schedule.time_zone
    )
    slot = schedule.due(since, now)
    kind = partial(rule_kind, vault, instance, policy)
    done = take_over_abandoned(vault, jobs, instance, who, since if slot is None else None, kind)
    if slot is None:
        return done
    earlier = [r.slot for r in runs if r.state is RunState.SUCCEEDED]
    tag = choose_tag(trigger.tagging_criteria, slot, earlier, get_zone(trigger.schedule.time_zone))
    log.info("%s: slot %s is due (tag %s)", instance.name, slot.isoformat(), tag.tag_name)
    outcome = take_backup(
        vault,
        jobs,
        instance,
        rule=rule.name,
        slot=slot,
        trigger=RunTrigger.SCHEDULED,
        tag=tag.tag_name,
        agent_id=who,
        kind=kind(slot),
    )
    return [*done, outcome]


def rule_kind(
    vault: OpenVault, instance: BackupInstance, policy: BackupPolicy, slot: datetime
) -> BackupType | None:
    """What the backup rule takes at this slot (an Incremental rule's week starts Full)."""
    rule = policy.backup_rule()
    if rule.backup_type is not BackupType.INCREMENTAL:
        return rule.backup_type
    fulls = {
        info.backup_id
        for info in Catalog(vault.store.store, instance.server_name).backups()
        if info.status == "DONE" and not info.parent_backup_id
    }
    taken = [
        run.slot
        for run in vault.store.runs(instance.name)
        if run.state is RunState.SUCCEEDED and run.backup_id in fulls
    ]
    trigger = rule.trigger
    zone = get_zone(trigger.schedule.time_zone) if isinstance(trigger, ScheduleTrigger) else UTC
    return slot_kind(rule.backup_type, slot, taken, zone)


def adhoc_backup(
    vault: OpenVault, jobs: JobStore, name: str, rule_name: str, now: datetime, who: str
) -> RunOutcome:
    """`adhoc-backup --rule-name R`: a backup now, tagged so that rule's retention applies."""
    instance = vault.store.get_instance(name)
    instance.require_protected(vault.entry.name, "an on-demand backup")
    policy = vault.store.get_policy(instance.policy_name)
    tag = adhoc_tag(policy, rule_name)
    return take_backup(
        vault,
        jobs,
        instance,
        rule=rule_name,
        slot=require_aware(now, "now").replace(microsecond=0),
        trigger=RunTrigger.ADHOC,
        tag=tag,
        agent_id=who,
        kind=rule_kind(vault, instance, policy, now),
    )


def agent_pass(
    state_dir: str | None, vault: str | None, now: datetime, who: str | None = None
) -> list[PassReport]:
    """`agent --once`: one pass over the named vault, or every vault of this host."""
    from core.protection.service import opened_vault

    reports = []
    with JobStore.open(state_dir) as jobs:
        for name in vault_names(state_dir, vault):
            if stop_reason() is not None:
                break
            try:
                with opened_vault(state_dir, name) as opened:
                    reports.append(run_pass(opened, jobs, now, who or agent_id()))
            except Exception as exc:  # one vault's destination gone must not stop the others
                error = failure_text(exc)
                log.error("%s", error)
                reports.append(PassReport(name, require_aware(now, "now"), errors=[error]))
    return reports


def adhoc(
    state_dir: str | None, vault: str, name: str, rule_name: str, now: datetime
) -> RunOutcome:
    """`backup-instance adhoc-backup`, opened from the registry."""
    from core.protection.service import opened_vault

    with JobStore.open(state_dir) as jobs, opened_vault(state_dir, vault) as opened:
        return adhoc_backup(opened, jobs, name, rule_name, now, agent_id())


__all__ = [
    "PassReport",
    "adhoc",
    "adhoc_backup",
    "agent_id",
    "agent_pass",
    "run_due_slot",
    "run_pass",
    "vault_names",
]
