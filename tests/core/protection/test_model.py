"""Vaults, instances and run records: JSON both ways; secrets only by reference."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import keyring
import psycopg2.extensions
import pytest
from keyring.backends.fail import Keyring as FailKeyring
from keyrings.alt.file import PlaintextKeyring

from core.errors import InputError, OperationFailed
from core.protection.model import (
    BackupInstance,
    Datasource,
    ProtectionState,
    RunRecord,
    RunState,
    RunTrigger,
    SecondaryRetention,
    Vault,
    check_conninfo,
)
from core.protection.runs import connection_for
from core.protection.secretref import SecretReference
from core.secrets import redact


def test_secret_references_are_read_at_run_time_and_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGV_TEST_PASSWORD", "s3cret-from-env")
    assert SecretReference.parse("env:PGV_TEST_PASSWORD").resolve() == "s3cret-from-env"
    assert redact("password is s3cret-from-env") == "password is ***"
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-a-file\n")
    assert SecretReference.parse(f"file:{secret_file}").resolve() == "from-a-file"


def test_unreadable_or_malformed_references_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="environment variable is not set"):
        SecretReference.parse("env:PGV_SURELY_NOT_SET").resolve()
    with pytest.raises(InputError, match="cannot read the file"):
        SecretReference.parse(f"file:{tmp_path}/missing").resolve()
    with pytest.raises(InputError, match="not env:NAME, file:PATH or keyring:SERVICE/USERNAME"):
        SecretReference.parse("vault:x")
    with pytest.raises(InputError, match="absolute path"):
        SecretReference.parse("file:relative/pw")
    with pytest.raises(InputError, match="must be keyring:SERVICE/USERNAME"):
        SecretReference.parse("keyring:pgvault")


def test_keyring_references_read_the_hosts_keyring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    previous = keyring.get_keyring()
    try:
        keyring.set_keyring(PlaintextKeyring())
        keyring.set_password("pgvault", "pg-main", "from-the-keyring")
        assert SecretReference.parse("keyring:pgvault/pg-main").resolve() == "from-the-keyring"
        assert redact("pw from-the-keyring") == "pw ***"
        with pytest.raises(InputError, match="keyring:pgvault/other: the keyring holds no such"):
            SecretReference.parse("keyring:pgvault/other").resolve()
        keyring.set_keyring(FailKeyring())
        with pytest.raises(InputError, match="keyring:pgvault/pg-main: the keyring failed"):
            SecretReference.parse("keyring:pgvault/pg-main").resolve()
    finally:
        keyring.set_keyring(previous)


@pytest.mark.parametrize(
    "conninfo",
    [
        "host=db user=app password=hunter2",
        "postgresql://app:hunter2@db/app",
        "postgresql://db/app?password=x",
    ],
)
def test_a_conninfo_holding_a_password_is_refused(conninfo: str) -> None:
    with pytest.raises(InputError, match="must not hold a password") as caught:
        Datasource(conninfo)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "conninfo", ["host=db user=o'brien dbname=app", "postgresql://backup@db:5432/app"]
)
def test_the_password_joins_the_conninfo_with_libpq_s_quoting(
    conninfo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGV_TEST_QUOTED", "it's a \\ secret")
    instance = BackupInstance(
        "i", "pg1", Datasource(conninfo, SecretReference.parse("env:PGV_TEST_QUOTED")), "p"
    )
    dsn = psycopg2.extensions.parse_dsn(connection_for(instance).dsn())
    assert dsn["password"] == "it's a \\ secret"
    assert dsn["host"] == "db"


def test_a_malformed_conninfo_stored_earlier_fails_its_backup_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGV_TEST_PW", "pw-7c41ab")
    conninfo = "host=127.0.0.1 port=55432 user='backup"
    with pytest.raises(InputError, match="unterminated quoted string"):
        check_conninfo(conninfo, "--datasource")
    # an instance create did not check yet (created by an older pgvault): its backup fails
    instance = BackupInstance(
        "i", "pg1", Datasource(conninfo, SecretReference.parse("env:PGV_TEST_PW")), "p"
    )
    with pytest.raises(OperationFailed) as caught:
        connection_for(instance)
    assert "user='backup" in str(caught.value)  # the user name, shown: it is no secret
    assert "unterminated quoted string" in str(caught.value)
    assert "pw-7c41ab" not in str(caught.value) and "***" not in str(caught.value)


def test_an_instance_round_trips_and_stores_only_the_reference() -> None:
    instance = BackupInstance(
        "ossrg-empdb11",
        "pg-main",
        Datasource(
            "host=db port=5432 user=backup dbname=empdb11", SecretReference.parse("env:PGPASS")
        ),
        "osspol5",
        ProtectionState.STOPPED,
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    document = instance.to_json()
    assert document["datasourceAuthCredentials"]["secretStoreResource"] == {
        "secretStoreType": "env",
        "uri": "PGPASS",
    }
    assert BackupInstance.from_json(document) == instance


def test_a_bad_instance_names_its_path() -> None:
    document = BackupInstance("i1", "pg", Datasource("host=db"), "p1").to_json()
    document["currentProtectionState"] = "Sleeping"
    with pytest.raises(InputError, match=r"\$\.currentProtectionState: unknown value 'Sleeping'"):
        BackupInstance.from_json(document)
    document = BackupInstance("i1", "pg", Datasource("host=db"), "p1").to_json()
    document["friendlyName"] = "bad/name"
    with pytest.raises(InputError, match="invalid backup instance name"):
        BackupInstance.from_json(document)
    # a bad conninfo or secret store is named once, at its own path (the file and
    # $.dataSourceInfo were said twice, and a bad secretStoreType sat under $.dataSourceInfo)
    for key, value, path in (
        (
            "dataSourceInfo",
            {"conninfo": 5, "objectType": "Datasource"},
            "$.dataSourceInfo.conninfo",
        ),
        (
            "datasourceAuthCredentials",
            {
                "objectType": "SecretStoreBasedAuthCredentials",
                "secretStoreResource": {"uri": "x", "secretStoreType": "AzureKeyVault"},
            },
            "$.datasourceAuthCredentials.secretStoreResource.secretStoreType",
        ),
    ):
        bad = {**BackupInstance("i1", "pg", Datasource("host=db"), "p1").to_json(), key: value}
        with pytest.raises(InputError) as caught:
            BackupInstance.from_json(bad, "backup instance file i.json")
        assert str(caught.value).startswith(f"backup instance file i.json {path}: "), caught
        assert str(caught.value).count("i.json") == 1, caught


def test_a_secondary_destination_round_trips_without_credentials_only() -> None:
    url = "s3://dr-bucket/pgvault?AWS_REGION=eu-west-1"
    instance = BackupInstance("i1", "pg", Datasource("host=db"), "p1", secondary_destination=url)
    document = instance.to_json()
    assert document["secondaryDestination"] == url
    assert BackupInstance.from_json(document) == instance
    document["secondaryDestination"] = (
        url + "&AWS_ACCESS_KEY_ID=A&AWS_SECRET_ACCESS_KEY=topsecret-k"
    )
    with pytest.raises(InputError, match=r"\$\.secondaryDestination: the URL carries credent") as e:
        BackupInstance.from_json(document)
    assert "topsecret-k" not in str(e.value)
    document["secondaryDestination"] = "ftp://nowhere/x"
    with pytest.raises(InputError, match=r"\$\.secondaryDestination: "):
        BackupInstance.from_json(document)


def test_secondary_retention_round_trips_and_follow_needs_a_secondary() -> None:
    url = "s3://dr-bucket/pgvault?AWS_REGION=eu-west-1"
    instance = BackupInstance("i1", "pg", Datasource("host=db"), "p1", secondary_destination=url)
    assert instance.to_json()["secondaryRetention"] == "keep"  # the default, shown
    follow = replace(instance, secondary_retention=SecondaryRetention.FOLLOW)
    document = follow.to_json()
    assert document["secondaryRetention"] == "follow"
    assert BackupInstance.from_json(document) == follow
    del document["secondaryRetention"]  # stored before the setting existed: keep
    assert BackupInstance.from_json(document).secondary_retention is SecondaryRetention.KEEP
    document["secondaryRetention"] = "other"
    with pytest.raises(InputError, match=r"\$\.secondaryRetention: .*keep, follow"):
        BackupInstance.from_json(document)
    document["secondaryRetention"] = "follow"
    del document["secondaryDestination"]
    with pytest.raises(InputError, match=r"\$\.secondaryRetention: 'follow' needs a second"):
        BackupInstance.from_json(document)
    with pytest.raises(InputError, match="needs a secondary destination"):
        replace(follow, secondary_destination=None)


def test_a_vault_destination_never_carries_credentials() -> None:
    with pytest.raises(InputError, match="must not carry credentials"):
        Vault("v", "s3://bucket/p?AWS_SECRET_ACCESS_KEY=abc")
    with pytest.raises(InputError, match="must not carry credentials"):
        Vault("v", "https://user:pw@host/container")
    with pytest.raises(InputError, match="at least 1"):
        Vault("v", "file:///srv/backups", 0)


def test_vaults_and_run_records_round_trip() -> None:
    vault = Vault("TestBkpVault", "s3://bucket/prefix", 30, datetime(2026, 1, 1, tzinfo=UTC))
    assert Vault.from_json(vault.to_json()) == vault
    run = RunRecord(
        "i1",
        datetime(2026, 3, 29, 1, tzinfo=UTC),
        "BackupWeekly",
        RunTrigger.SCHEDULED,
        RunState.FAILED,
        "host-a:123",
        tag="Monthly",
        job_id="j-1",
        finished=datetime(2026, 3, 29, 1, 5, tzinfo=UTC),
        error="connection failed: password=hunter2",
    )
    back = RunRecord.from_json(run.to_json())
    assert back.error == "connection failed: password=***"
    assert back == RunRecord(**{**run.__dict__, "error": back.error})
