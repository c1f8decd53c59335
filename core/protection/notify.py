"""The agent's notifications: after a pass, each instance's notices, claimed and sent once.

Recipients are the vault's URLs plus the instance's own; apprise sends (webhooks, e-mail,
chat), pgvault writes no sender. A notice is sent by the agent that records it first
(notices.NoticeStore.claim), and a delivery that fails is recorded, not retried: the
condition's next change is notified again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from core.errors import PgvaultError
from core.protection import notices
from core.protection.durations import parse_duration
from core.protection.model import BackupInstance, ProtectionState, Vault
from core.protection.notify_urls import (
    apprise_messages,
    redact_notify_url,
    register_notify_secrets,
    resolve_notify_url,
)
from core.protection.policy import BackupType
from core.protection.status import instance_status, newest_wal
from core.secrets import redact

if TYPE_CHECKING:
    from core.protection.service import OpenVault

log = logging.getLogger("pgvault.protection")


@dataclass(frozen=True)
class Delivery:
    """One notice to one URL (shown redacted): sent, or failed and why."""

    url: str
    result: str  # sent, failed
    error: str | None = None

    def to_json(self) -> dict[str, str]:
        document = {"result": self.result, "url": self.url}
        if self.error:
            document["error"] = self.error
        return document


@dataclass(frozen=True)
class NoticeOutcome:
    """A notice this agent sent (the ones recorded before are not sent again)."""

    notice: notices.Notice
    deliveries: tuple[Delivery, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "deliveries": [d.to_json() for d in self.deliveries],
            "event": str(self.notice.event),
            "instance": self.notice.instance,
            "severity": str(self.notice.severity),
            "title": redact(self.notice.title),
        }


def send(
    urls: tuple[str, ...],
    title: str,
    body: str,
    severity: notices.Severity = notices.Severity.INFO,
) -> tuple[Delivery, ...]:
    """Send to each URL (or the URL a reference holds, read now) on its own, so one failing
    receiver does not hide the others; `severity` is apprise's notify type."""
    import apprise

    register_notify_secrets(urls)
    deliveries = []
    for target in urls:
        shown = redact_notify_url(target)
        try:
            url = resolve_notify_url(target)
        except PgvaultError as exc:  # unreadable here: this delivery fails, the others go
            log.warning("notification to %s failed: %s", shown, exc)
            deliveries.append(Delivery(shown, "failed", redact(str(exc))))
            continue
        sender = apprise.Apprise()
        with apprise_messages() as messages:
            try:
                sender.add(url)
                kind = apprise.NotifyType(str(severity))
                sent = bool(sender.notify(title=title, body=body, notify_type=kind))
            except Exception as exc:  # a sender's bug must not stop the agent
                messages.append(f"apprise failed: {exc}")
                sent = False
        if sent:
            deliveries.append(Delivery(shown, "sent"))
            continue
        error = redact("; ".join(messages[-2:]) or "apprise could not send it")
        log.warning("notification to %s failed: %s", shown, error)
        deliveries.append(Delivery(shown, "failed", error))
    return tuple(deliveries)


@dataclass(frozen=True)
class PassFacts:
    """What a pass saw that the notices need: its clock and its retention results."""

    now: datetime
    retention: Sequence[notices.RetentionOutcome] = ()
    #: (instance, error) for each instance the pass could not handle
    failures: Sequence[tuple[str, str]] = ()


def instance_notices(
    opened: OpenVault, vault: Vault, instance: BackupInstance, report: PassFacts
) -> list[notices.Notice]:
    """The notices about one instance after this pass (sent or not before)."""
    store = opened.store
    policy = store.get_policy(instance.policy_name)
    runs = list(store.runs(instance.name))
    found = [notices.job_failed(instance.name, runs)]
    found += [notices.taken_over(run) for run in runs if run.abandoned]
    outcomes = [o for o in report.retention if o.instance == instance.name]
    found += [notices.delete_failed(o) for o in outcomes if o.result == "failed"]
    found.append(notices.retention(instance.name, outcomes))
    last_wal = None
    physical = policy.backup_rule().backup_type is not BackupType.LOGICAL
    if vault.wal_lag_threshold is not None and physical:
        last_wal = newest_wal(store.store, instance.server_name)
    status = instance_status(store.name, instance, policy, runs, report.now, last_wal)
    found.append(notices.stale(status))
    if vault.wal_lag_threshold is not None:
        threshold = parse_duration(vault.wal_lag_threshold).longest()
        found.append(notices.wal_lag(status, threshold))
    return [notice for notice in found if notice is not None]


def notify_pass(
    opened: OpenVault,
    report: PassFacts,
    who: str,
    instances: Sequence[BackupInstance] | None = None,
) -> list[NoticeOutcome]:
    """Every configured instance's new notices, each claimed, sent and recorded once.

    `instances`: the ones the pass already read (the agent's idle pass reads each once).
    """
    vault = opened.store.load()
    outcomes: list[NoticeOutcome] = []
    for instance in opened.store.instances() if instances is None else instances:
        urls = tuple(dict.fromkeys((*vault.notify, *instance.notify)))
        if not urls or instance.state is not ProtectionState.CONFIGURED:
            continue
        register_notify_secrets(urls)
        found = [
            notices.instance_failed(name, error, report.now)
            for name, error in report.failures
            if name == instance.name
        ]
        try:
            found += instance_notices(opened, vault, instance, report)
        except Exception as exc:  # the pass's report already says what went wrong
            log.error("%s: notifications: %s", instance.name, exc)
        store = notices.NoticeStore(opened.store)
        for notice in found:
            if not store.claim(notice, report.now, who):
                continue
            deliveries = send(urls, notice.title, notice.body, notice.severity)
            store.record(notice, report.now, who, [d.to_json() for d in deliveries])
            outcomes.append(NoticeOutcome(notice, deliveries))
    return outcomes


__all__ = ["Delivery", "NoticeOutcome", "PassFacts", "instance_notices", "notify_pass", "send"]
