"""Notifications from `agent --once` (an injected clock, `--now`) to real receivers on
127.0.0.1: a webhook server (apprise json://) named by the vault and an SMTP server
(aiosmtpd, apprise mailto:// with a login) named by the instance. A failed backup job, a
stale instance, WAL archiving behind and retention deletions are each told once, even with
two agents racing; the secrets in the URLs never show in output, job records or logs."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_protection_agent import PASSWORD, Agent, require_password
from tests.support.catalog import SERVER, archived_server
from tests.support.cli import pgvault, spawn
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster
from tests.support.receivers import Mailbox, Webhook, smtp_server, webhook_server

TOKEN = "hook-token-e2e-41d9a7"
DEAD_PASSWORD = "dead-pw-77c3e0"


def policy(schedule: str, default_keep: str) -> dict[str, Any]:
    """A schedule; the first backup of a day is Daily (kept a day), others Default."""

    def rule(name: str, keep: str) -> dict[str, Any]:
        return {
            "isDefault": name == "Default",
            "lifecycles": [
                {
                    "deleteAfter": {"duration": keep, "objectType": "AbsoluteDeleteOption"},
                    "sourceDataStore": {
                        "dataStoreType": "VaultStore",
                        "objectType": "DataStoreInfoBase",
                    },
                    "targetDataStoreCopySettings": [],
                }
            ],
            "name": name,
            "objectType": "AzureRetentionRule",
        }

    return {
        "datasourceTypes": ["Microsoft.DBforPostgreSQL/servers/databases"],
        "objectType": "BackupPolicy",
        "policyRules": [
            {
                "backupParameters": {"backupType": "Full", "objectType": "AzureBackupParams"},
                "dataStore": {"dataStoreType": "VaultStore", "objectType": "DataStoreInfoBase"},
                "name": "Scheduled",
                "objectType": "AzureBackupRule",
                "trigger": {
                    "objectType": "ScheduleBasedTriggerContext",
                    "schedule": {"repeatingTimeIntervals": [schedule], "timeZone": "UTC"},
                    "taggingCriteria": [
                        {
                            "isDefault": True,
                            "tagInfo": {"tagName": "Default"},
                            "taggingPriority": 99,
                        },
                        {
                            "criteria": [
                                {
                                    "absoluteCriteria": ["FirstOfDay"],
                                    "objectType": "ScheduleBasedBackupCriteria",
                                }
                            ],
                            "isDefault": False,
                            "tagInfo": {"tagName": "Daily"},
                            "taggingPriority": 25,
                        },
                    ],
                },
            },
            rule("Default", default_keep),
            rule("Daily", "P1D"),
        ],
    }


@pytest.fixture
def receivers() -> Iterator[tuple[Webhook, Mailbox]]:
    with webhook_server() as hook, smtp_server() as box:
        yield hook, box


class Notified(Agent):
    """An Agent whose every command output is kept, to prove no secret is ever shown."""

    shown: list[str]

    def run(self, *args: str, code: int = 0) -> Any:
        result = pgvault(*args, env=self.env)
        self.shown = [*getattr(self, "shown", []), result.stdout, result.stderr]
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        return json.loads(result.stdout) if result.stdout else None

    def pass_at(self, at: datetime, code: int = 0) -> dict[str, Any]:
        reports = self.run("agent", "--once", "--vault", "v1", "--now", at.isoformat(), code=code)
        return dict(reports[0])

    def assert_no_secret(self, *secrets: str) -> None:
        every = "\n".join(self.shown)
        jobs = (self.state / "jobs.db").read_bytes() if (self.state / "jobs.db").exists() else b""
        for secret in secrets:
            assert secret not in every
            assert secret.encode() not in jobs


def set_up(agent: Notified, hook: Webhook, box: Mailbox, conninfo: str, rules: Any) -> None:
    """The vault names the webhook by a file reference, the instance the mailbox by an
    environment reference: their URLs hold a token and a password, which stay on this host."""
    dest = agent.dest
    agent.run("vault", "create", "v1", "--destination", dest.url, *dest.cli_args)
    hook_file = agent.state / "hook-url"
    hook_file.write_text(hook.url(query=f"+X-Token={TOKEN}") + "\n")
    hook_file.chmod(0o600)
    shown = agent.run("vault", "update", "v1", "--notify", f"file:{hook_file}")
    assert shown["notify"] == [f"file:{hook_file}"]
    agent.run(
        "policy", "create", "--vault", "v1", "--name", "p",
        "--policy", agent.file("policy.json", rules),
    )  # fmt: skip
    instance = agent.run(
        "backup-instance", "initialize", "--datasource", conninfo,
        "--server-name", SERVER, "--policy", "p",
        "--secret-store-type", "env", "--secret-store-uri", "PGV_PASSWORD",
    )  # fmt: skip
    agent.run(
        "backup-instance", "create", "--vault", "v1",
        "--backup-instance", agent.file("instance.json", instance),
    )  # fmt: skip
    agent.env["PGV_MAIL_URL"] = box.url()
    updated = agent.run(
        "backup-instance", "update", "--vault", "v1", "--name", SERVER,
        "--notify", "env:PGV_MAIL_URL",
    )  # fmt: skip
    assert updated["notify"] == ["env:PGV_MAIL_URL"]


def assert_state_holds_no_secret(agent: Notified, *secrets: str) -> None:
    """Every object of the vault's state (vault, instances, runs, notices) is secret-free."""
    with agent.dest.store() as store:
        keys = [item.key for item in store.list_objects(".pgvault/")]
        assert any(key.endswith("/vault.json") for key in keys), keys
        for key in keys:
            data = store.get_bytes(key)
            for secret in secrets:
                assert secret.encode() not in data, key


def next_minute(after: datetime) -> datetime:
    return after.replace(second=0, microsecond=0) + timedelta(minutes=1)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def titles(hook: Webhook) -> list[str]:
    return [post["json"]["title"] for post in hook.posts]


@pytest.mark.parametrize("provider", ["file", "s3"])
def test_a_failed_backup_job_is_notified_once_and_bad_urls_are_refused(
    provider: str,
    make_dest: Callable[..., TestDestination],
    receivers: tuple[Webhook, Mailbox],
    tmp_path: Path,
) -> None:
    hook, box = receivers
    agent = Notified(make_dest(provider), tmp_path / "state")
    conninfo = f"host=127.0.0.1 port={closed_port()} user=postgres dbname=postgres"
    base = next_minute(datetime.now(UTC) + timedelta(minutes=1))
    set_up(agent, hook, box, conninfo, policy(f"R/{base.isoformat()}/PT10M", "PT3M"))
    # a URL holding a secret is refused unless the operator opts in to store it as it is
    dead = f"jsons://hookuser:{DEAD_PASSWORD}@127.0.0.1:{closed_port()}/x"
    inline = pgvault("vault", "update", "v1", "--notify", dead, env=agent.env)
    assert inline.returncode == 3, inline.stderr
    assert inline.stdout == "" and len(inline.stderr.strip().splitlines()) == 1
    assert "--notify jsons://hookuser:***@127.0.0.1" in inline.stderr
    assert "--allow-secret-in-vault" in inline.stderr and DEAD_PASSWORD not in inline.stderr
    assert agent.run("vault", "show", "v1")["notify"] == [f"file:{agent.state / 'hook-url'}"]
    # a receiver that is down, stored inline by opt-in: its delivery fails, is reported,
    # and shows no secret
    hook_ref = f"file:{agent.state / 'hook-url'}"
    agent.run("vault", "update", "v1", "--notify", hook_ref, dead, "--allow-secret-in-vault")

    first = agent.pass_at(base + timedelta(seconds=10), code=1)
    assert [(r["state"], r["jobId"] is not None) for r in first["runs"]] == [("failed", True)]
    assert [
        (n["event"], [d["result"] for d in n["deliveries"]]) for n in first["notifications"]
    ] == [("job-failed", ["sent", "failed", "sent"])]
    failed = first["notifications"][0]["deliveries"][1]
    assert failed["url"] == dead.replace(DEAD_PASSWORD, "***")
    assert "notification to jsons://hookuser:***@127.0.0.1" in agent.shown[-1]  # the log line
    assert titles(hook) == [f"pgvault: backup of {SERVER} failed"]
    assert hook.posts[0]["headers"]["X-Token"] == TOKEN  # the secret reached its receiver
    assert "failed" in hook.posts[0]["json"]["message"]
    assert [m["Subject"] for m in box.mails] == [f"pgvault: backup of {SERVER} failed"]
    assert box.logins == [(box.user, box.password)]
    # the next slot fails too: the same streak, not told again
    second = agent.pass_at(base + timedelta(minutes=10, seconds=10), code=1)
    assert [r["state"] for r in second["runs"]] == ["failed"]
    assert second["notifications"] == []
    assert len(hook.posts) == 1 and len(box.mails) == 1

    # bad input: exit 3, one line naming the URL with its secret masked; nothing stored
    bad = pgvault(
        "vault", "update", "v1", "--notify", "nosuch://admin:bad-pw-66a1@host/x", env=agent.env
    )
    assert bad.returncode == 3, bad.stderr
    assert bad.stdout == "" and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "nosuch://admin:***@host/x" in bad.stderr and "bad-pw-66a1" not in bad.stderr
    lag = pgvault("vault", "update", "v1", "--wal-lag-threshold", "soon", env=agent.env)
    assert lag.returncode == 3 and "'soon' is not an ISO 8601 duration" in lag.stderr
    shown = agent.run("vault", "show", "v1")
    assert shown["notify"] == [hook_ref, failed["url"]]
    assert shown["walLagThreshold"] is None
    agent.run("backup-instance", "list", "--vault", "v1")
    agent.run("backup-instance", "show", "--vault", "v1", "--name", SERVER)
    agent.assert_no_secret(TOKEN, box.password, DEAD_PASSWORD)
    with agent.dest.store() as store:  # the notice records hold redacted URLs only
        notices = [i.key for i in store.list_objects(".pgvault/vaults/v1/notices/")]
        assert len(notices) == 1
        assert DEAD_PASSWORD.encode() not in store.get_bytes(notices[0])
    # the referenced URLs' token and password are nowhere in the vault's state; the
    # opted-in one is, as the operator asked
    assert_state_holds_no_secret(agent, TOKEN, box.password)
    with agent.dest.store() as store:
        assert DEAD_PASSWORD.encode() in store.get_bytes(".pgvault/vaults/v1/vault.json")
    cleared = agent.run("vault", "update", "v1", "--no-notify")
    assert cleared["notify"] == []


def test_stale_protection_wal_lag_and_retention_are_each_notified_once(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    receivers: tuple[Webhook, Mailbox],
    tmp_path: Path,
) -> None:
    hook, box = receivers
    dest = make_dest("file")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    require_password(server.cluster)
    agent = Notified(dest, tmp_path / "state")
    conninfo = f"host=127.0.0.1 port={server.cluster.port} user=postgres dbname=postgres"
    # two slots ten minutes apart; the first is before the instance exists, so only `start`
    # runs, and after it nothing more is due: the protection goes stale
    start = next_minute(datetime.now(UTC) + timedelta(minutes=1))
    rules = policy(f"R2/{(start - timedelta(minutes=10)).isoformat()}/PT10M", "PT30M")
    set_up(agent, hook, box, conninfo, rules)
    agent.run("vault", "update", "v1", "--wal-lag-threshold", "PT5M")
    # an ad hoc backup now (Default: kept 30 minutes), then the scheduled one (Daily)
    adhoc = agent.run(
        "backup-instance", "adhoc-backup", "--vault", "v1", "--name", SERVER,
        "--rule-name", "Default",
    )  # fmt: skip
    b0 = adhoc["backupId"]
    first = agent.pass_at(start + timedelta(seconds=10))
    assert [(r["state"], r["tag"]) for r in first["runs"]] == [("succeeded", "Daily")]
    assert first["notifications"] == []  # healthy, WAL fresh, nothing deleted: no message
    assert hook.posts == [] and box.mails == []

    # 25 minutes on nothing ran: critical, and WAL is behind its 5 minutes; two agents
    # race on the pass, and each message is sent once
    stale_at = (start + timedelta(minutes=25)).isoformat()
    args = ("agent", "--once", "--vault", "v1", "--now", stale_at)
    procs = [spawn(*args, env=agent.env) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    agent.shown += [text for pair in outputs for text in pair]
    sent = sorted(n["event"] for out, _ in outputs for n in json.loads(out)[0]["notifications"])
    assert sent == ["protection-stale", "wal-lag"], outputs
    assert sorted(t.split(" is ")[0].split(" behind")[0] for t in titles(hook)) == [
        f"pgvault: WAL archiving of {SERVER}",
        f"pgvault: protection of {SERVER}",
    ]
    assert f"pgvault: protection of {SERVER} is critical" in titles(hook)
    assert len(box.mails) == 2
    assert agent.pass_at(start + timedelta(minutes=26))["notifications"] == []

    # later: the ad hoc backup is past its 30 minutes and is deleted; that alone is told
    later = agent.pass_at(start + timedelta(minutes=35))
    assert [(r["backupId"], r["result"]) for r in later["retention"]] == [(b0, "done")]
    assert [n["event"] for n in later["notifications"]] == ["retention"]
    assert titles(hook)[-1] == f"pgvault: retention of {SERVER}: 1 done"
    assert b0 in hook.posts[-1]["json"]["message"]
    assert box.mails[-1]["Subject"] == titles(hook)[-1]
    assert agent.pass_at(start + timedelta(minutes=40))["notifications"] == []
    assert len(hook.posts) == 3 and len(box.mails) == 3
    assert box.logins[-1] == (box.user, box.password)  # the referenced password logged in
    agent.assert_no_secret(TOKEN, box.password, PASSWORD)
    assert_state_holds_no_secret(agent, TOKEN, box.password, PASSWORD)
