"""Notifications: URLs checked and redacted, messages built from runs, status and retention,
and each condition notified once (a second pass or a second agent sends nothing) to a real
webhook and SMTP server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import keyring
import pytest
from keyrings.alt.file import PlaintextKeyring

from core.errors import InputError, PgvaultError
from core.protection import notices
from core.protection.lifecycles import RetentionOutcome
from core.protection.model import (
    BackupInstance,
    Datasource,
    RunRecord,
    RunState,
    RunTrigger,
    Vault,
)
from core.protection.notify import PassFacts, notify_pass, send
from core.protection.notify_urls import check_notify_urls, redact_notify_url
from core.protection.policy_read import parse_policy
from core.protection.registry import VaultEntry
from core.protection.service import OpenVault
from core.protection.status import Health, instance_status
from core.protection.vaultstore import VaultStore
from core.secrets import redact
from core.storage import StoreConfig, open_store
from core.urls import parse_location
from tests.core.protection.policies import template_text
from tests.support.receivers import Mailbox, Webhook, smtp_server, webhook_server

SLOT = datetime(2021, 8, 15, 6, 30, tzinfo=UTC)  # the template's weekly Sunday slot
TOKEN = "hook-token-93f1c2"


def run(slot: datetime, state: RunState, backup: str | None = None) -> RunRecord:
    error = "could not connect" if state is RunState.FAILED else None
    return RunRecord(
        "db", slot, "BackupWeekly", RunTrigger.SCHEDULED, state, "host:1", "Default",
        "7", backup, slot + timedelta(minutes=5), error,
    )  # fmt: skip


def test_secrets_in_notification_urls_are_masked_and_registered() -> None:
    cases = {
        "mailto://bob:mail-pw-4411@mx.example.com?to=ops@example.com": "mail-pw-4411",
        "json://hooks.example.com/in?token=tok-81fe0a": "tok-81fe0a",
        "json://hooks.example.com/in?+X-Api-Key=hdr-5c7d21": "hdr-5c7d21",
        # a token in the path: apprise's privacy form hides it, so pgvault does too
        "tgram://123456789:AAbbCCddEEffGGhh/-1234": "AAbbCCddEEffGGhh",
    }
    for url, secret in cases.items():
        shown = redact_notify_url(url)
        assert secret not in shown, shown
        assert "***" in shown
        # registered: any later text quoting it is masked too
        assert secret not in redact(f"sending failed: {secret}")
    assert redact_notify_url("json://hooks.example.com/in") == "json://hooks.example.com/in"


def test_an_unknown_notification_url_is_bad_input_named_redacted() -> None:
    with pytest.raises(InputError) as caught:
        check_notify_urls(["nosuch://admin:bad-pw-66a1@host/x"])
    message = str(caught.value)
    assert caught.value.exit_code == 3
    assert "nosuch://admin:***@host/x" in message
    assert "bad-pw-66a1" not in message
    with pytest.raises(InputError):
        check_notify_urls(["not a url"])
    assert check_notify_urls(["json://h/x", "json://h/x"]) == ("json://h/x",)


def test_a_url_holding_a_secret_is_refused_unless_the_operator_opts_in() -> None:
    for url, secret in (
        ("mailto://bob:mail-pw-4411@mx.example.com?to=ops@example.com", "mail-pw-4411"),
        ("json://hooks.example.com/in?+X-Api-Key=hdr-5c7d21", "hdr-5c7d21"),
        ("tgram://123456789:AAbbCCddEEffGGhh/-1234", "AAbbCCddEEffGGhh"),
    ):
        with pytest.raises(InputError) as caught:
            check_notify_urls([url])
        message = str(caught.value)
        assert caught.value.exit_code == 3
        assert message.startswith("--notify ") and "***" in message
        assert "--allow-secret-in-vault" in message and "env:NAME" in message
        assert secret not in message
        assert check_notify_urls([url], allow_inline=True) == (url,)
    assert check_notify_urls(["json://hooks.example.com/in"]) == ("json://hooks.example.com/in",)


def test_a_secret_reference_is_stored_as_given_and_read_when_sending(
    receivers: tuple[Webhook, Mailbox], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook, box = receivers
    monkeypatch.setenv("PGV_TEST_MAIL_URL", box.url())
    hook_file = tmp_path / "hook-url"
    hook_file.write_text(hook.url(query=f"+X-Token={TOKEN}") + "\n")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))  # PlaintextKeyring's file
    previous = keyring.get_keyring()
    try:
        keyring.set_keyring(PlaintextKeyring())
        keyring.set_password("pgvault-notify", "ops", hook.url(path="from-keyring"))
        targets = ("env:PGV_TEST_MAIL_URL", f"file:{hook_file}", "keyring:pgvault-notify/ops")
        assert check_notify_urls(targets) == targets  # read to check it, stored as given
        vault = Vault("v", "file:///tmp/x", notify=targets)
        assert vault.stored_json()["notify"] == list(targets) == vault.to_json()["notify"]
        deliveries = send((*targets, "env:PGV_TEST_NOT_SET"), "pgvault: test", "a body")
    finally:
        keyring.set_keyring(previous)
    assert [d.result for d in deliveries] == ["sent", "sent", "sent", "failed"]
    assert [d.url for d in deliveries] == [*targets, "env:PGV_TEST_NOT_SET"]
    assert "environment variable is not set" in str(deliveries[3].error)
    assert [m["Subject"] for m in box.mails] == ["pgvault: test"]
    assert box.logins == [(box.user, box.password)]
    assert [(p["path"], p["headers"].get("X-Token")) for p in hook.posts] == [
        ("/hook", TOKEN),
        ("/from-keyring", None),
    ]
    # read, the URLs' secrets are registered: no later message can show them
    assert box.password not in redact(f"login {box.password} refused")
    assert TOKEN not in redact(f"header {TOKEN}")


def test_a_reference_that_cannot_be_read_or_holds_no_url_is_bad_input(tmp_path: Path) -> None:
    secret_file = tmp_path / "not-a-url"
    secret_file.write_text("just-a-password-8d31")
    cases = {
        "env:PGV_TEST_NOT_SET": "env:PGV_TEST_NOT_SET: the environment variable is not set",
        f"file:{tmp_path}/missing": "cannot read the file",
        "file:relative/url": "must be an absolute path",
        f"file:{secret_file}": f"--notify file:{secret_file} holds a URL that is not",
    }
    for target, expected in cases.items():
        with pytest.raises(InputError) as caught:
            check_notify_urls([target])
        message = str(caught.value)
        assert caught.value.exit_code == 3 and expected in message, message
        assert message.startswith("--notify") and "nothing was stored" in message
        assert "just-a-password-8d31" not in message


def test_a_streak_of_failed_runs_is_one_notice_and_a_new_streak_another() -> None:
    week = timedelta(weeks=1)
    ok, bad = RunState.SUCCEEDED, RunState.FAILED
    assert notices.job_failed("db", [run(SLOT, ok, "b1")]) is None
    first = notices.job_failed("db", [run(SLOT, ok, "b1"), run(SLOT + week, bad)])
    assert first is not None
    assert first.event is notices.Event.JOB_FAILED
    assert first.severity is notices.Severity.FAILURE  # apprise's type: not "info"
    assert "could not connect" in first.body
    longer = notices.job_failed(
        "db", [run(SLOT, ok, "b1"), run(SLOT + week, bad), run(SLOT + 2 * week, bad)]
    )
    assert longer is not None
    assert longer.fingerprint == first.fingerprint  # still the same failure: not resent
    assert "Runs failed in a row: 2" in longer.body
    recovered = [run(SLOT, ok, "b1"), run(SLOT + week, bad), run(SLOT + 2 * week, ok, "b2")]
    assert notices.job_failed("db", recovered) is None
    again = notices.job_failed("db", [*recovered, run(SLOT + 3 * week, bad)])
    assert again is not None
    assert again.fingerprint != first.fingerprint
    # a run still going on (claimed) does not end a streak
    going = run(SLOT + 4 * week, RunState.CLAIMED)
    assert notices.job_failed("db", [*recovered, run(SLOT + 3 * week, bad), going]) == again


def test_stale_protection_is_one_notice_per_health_level_and_newest_backup() -> None:
    policy = parse_policy(template_text())  # weekly
    instance = BackupInstance("db", "pg1", Datasource("host=/tmp"), "p", created=SLOT)
    runs = [run(SLOT, RunState.SUCCEEDED, "b1")]
    end = SLOT + timedelta(minutes=5)

    def notice(after: timedelta, with_runs: list[RunRecord]) -> notices.Notice | None:
        return notices.stale(instance_status("v", instance, policy, with_runs, end + after))

    assert notice(timedelta(days=3), runs) is None
    warning = notice(timedelta(days=11), runs)
    critical = notice(timedelta(days=15), runs)
    later = notice(timedelta(days=40), runs)
    assert warning is not None and critical is not None and later is not None
    assert "is warning" in warning.title and "is critical" in critical.title
    assert (warning.severity, critical.severity) == ("warning", "failure")
    assert len({warning.fingerprint, critical.fingerprint}) == 2
    assert later.fingerprint == critical.fingerprint  # still critical, same backup: once
    newer = [*runs, run(SLOT + timedelta(weeks=3), RunState.SUCCEEDED, "b2")]
    again = notice(timedelta(weeks=3, days=15), newer)
    assert again is not None and again.fingerprint != critical.fingerprint
    # a new instance without a backup is not nagged about before it is critical
    fresh = instance_status("v", instance, policy, [], SLOT + timedelta(days=2))
    assert fresh.health is Health.WARNING and notices.stale(fresh) is None


def test_wal_lag_and_retention_notices() -> None:
    policy = parse_policy(template_text())
    instance = BackupInstance("db", "pg1", Datasource("host=/tmp"), "p", created=SLOT)
    now = SLOT + timedelta(hours=1)
    runs = [run(SLOT, RunState.SUCCEEDED, "b1")]
    fresh = instance_status("v", instance, policy, runs, now, now - timedelta(minutes=5))
    assert notices.wal_lag(fresh, timedelta(minutes=15)) is None
    old = instance_status("v", instance, policy, runs, now, now - timedelta(minutes=40))
    lag = notices.wal_lag(old, timedelta(minutes=15))
    assert lag is not None and "40 minutes behind" in lag.title
    assert lag.severity is notices.Severity.WARNING
    outcomes = [
        RetentionOutcome("db", "20210801T063000", "delete", "VaultStore", "done"),
        RetentionOutcome("db", "20210808T063000", "delete", "VaultStore", "failed", "denied"),
    ]
    summary = notices.retention("db", outcomes)
    assert summary is not None
    assert summary.title == "pgvault: retention of db: 1 done, 1 failed"
    assert "delete 20210808T063000 (VaultStore): failed: denied" in summary.body
    assert summary.severity is notices.Severity.FAILURE
    done = notices.retention("db", outcomes[:1])
    assert done is not None and done.severity is notices.Severity.SUCCESS
    same = notices.retention("db", list(reversed(outcomes)))
    assert same is not None and same.fingerprint == summary.fingerprint
    assert notices.retention("db", []) is None
    held = RetentionOutcome("db", "20210815T063000", "delete", "VaultStore", "held", "newest")
    assert notices.retention("db", [held]) is None  # held again every pass: not a notice
    with_held = notices.retention("db", [*outcomes, held])
    assert with_held is not None and with_held.fingerprint == summary.fingerprint
    assert "held: newest" in with_held.body
    assert notices.delete_failed(outcomes[1]).fingerprint == "delete-20210808T063000"
    assert notices.delete_failed(outcomes[1]).severity is notices.Severity.FAILURE
    assert notices.instance_failed("db", "boom", now).severity is notices.Severity.FAILURE


@pytest.fixture
def receivers() -> Iterator[tuple[Webhook, Mailbox]]:
    with webhook_server() as hook, smtp_server() as box:
        yield hook, box


def test_send_delivers_to_a_webhook_and_a_mailbox_and_reports_a_dead_receiver(
    receivers: tuple[Webhook, Mailbox],
) -> None:
    hook, box = receivers
    urls = (hook.url(query=f"+X-Token={TOKEN}"), box.url(), "json://127.0.0.1:9/nobody")
    deliveries = send(urls, "pgvault: test", "a body")
    assert [d.result for d in deliveries] == ["sent", "sent", "failed"]
    assert [(p["json"]["title"], p["headers"]["X-Token"]) for p in hook.posts] == [
        ("pgvault: test", TOKEN)
    ]
    assert [m["Subject"] for m in box.mails] == ["pgvault: test"]
    assert box.logins == [(box.user, box.password)]
    shown = json.dumps([d.to_json() for d in deliveries])
    assert TOKEN not in shown and box.password not in shown
    assert "127.0.0.1:9" in shown


def test_the_agent_step_notifies_once_per_change_across_passes_and_agents(
    receivers: tuple[Webhook, Mailbox], tmp_path: Path
) -> None:
    hook, box = receivers
    location = parse_location(f"file://{tmp_path / 'dest'}")
    with open_store(location, StoreConfig()) as store:
        vaults = VaultStore(store, "v")
        vaults.create(Vault("v", f"file://{tmp_path / 'dest'}", notify=(hook.url(),)))
        vaults.create_policy("p", parse_policy(template_text()))
        instance = BackupInstance(
            "db", "pg1", Datasource("host=/tmp"), "p", created=SLOT, notify=(box.url(),)
        )
        vaults.create_instance(instance)
        failed = run(SLOT, RunState.FAILED)
        vaults.claim_run(failed)
        opened = OpenVault(VaultEntry("v", f"file://{tmp_path / 'dest'}"), vaults)
        now = SLOT + timedelta(hours=1)
        sent = notify_pass(opened, PassFacts(now), "agent-a:1")
        assert [o.notice.event for o in sent] == [notices.Event.JOB_FAILED]
        assert [p["json"]["title"] for p in hook.posts] == ["pgvault: backup of db failed"]
        assert [p["json"]["type"] for p in hook.posts] == ["failure"]  # what apprise sent
        assert [m["Subject"] for m in box.mails] == ["pgvault: backup of db failed"]
        # the next pass, and another agent, find the notice recorded: nothing is resent
        assert notify_pass(opened, PassFacts(now + timedelta(minutes=1)), "a:1") == []
        assert notify_pass(opened, PassFacts(now), "agent-b:2") == []
        assert len(hook.posts) == 1
        # weeks later with still no backup: critical, notified once
        stale_at = SLOT + timedelta(days=20)
        sent = notify_pass(opened, PassFacts(stale_at), "agent-a:1")
        assert [o.notice.event for o in sent] == [notices.Event.PROTECTION_STALE]
        assert hook.posts[-1]["json"]["type"] == "failure"  # critical
        assert notify_pass(opened, PassFacts(stale_at + timedelta(days=1)), "b:2") == []
        records = [item.key for item in store.list_objects(vaults.notices_prefix("db"))]
        assert len(records) == 2
        for key in records:
            document = json.loads(store.get_bytes(key))
            assert document["deliveries"][1]["url"].startswith(f"mailto://{box.user}:***@")
            assert box.password not in json.dumps(document)
        # a stopped instance is not notified; its records go with it
        vaults.update_instance(replace(instance, state=instance.state.STOPPED))
        assert notify_pass(opened, PassFacts(stale_at + timedelta(days=30)), "a") == []
        vaults.delete_instance("db")
        assert list(store.list_objects(vaults.notices_prefix("db"))) == []


def test_a_vault_with_a_bad_wal_lag_threshold_is_refused() -> None:
    with pytest.raises(PgvaultError) as caught:
        Vault("v", "file:///tmp/x", wal_lag_threshold="15 minutes")
    assert "WAL lag threshold" in str(caught.value)
    with pytest.raises(InputError):
        Vault("v", "file:///tmp/x", wal_lag_threshold="PT0S")
