"""`--secondary-retention follow` under a fake clock: a local primary and moto's S3 as the
secondary. A legal hold in the secondary holds the copy (the primary's deletion done), the
next pass deletes it from the pending list once the hold is gone; a backup only in the
secondary is never touched; a secondary that cannot be reached fails the step (the pass's
error), never the primary's deletion."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from core.catalog.copies import read_copies, record_copy
from core.catalog.reader import Catalog
from core.jobs import JobStore
from core.protection.lifecycles import RetentionOutcome, apply_retention, secondary_failures
from core.protection.model import (
    BackupInstance,
    Datasource,
    RunRecord,
    RunState,
    RunTrigger,
    SecondaryRetention,
    Vault,
)
from core.protection.policy_read import parse_policy
from core.protection.registry import entry_for
from core.protection.secondary_retention import pending
from core.protection.service import OpenVault
from core.protection.vaultstore import VaultStore
from core.urls import parse_location, public_url
from tests.core.protection.policies import edited_policy
from tests.support.catalog import SERVER, put_backup
from tests.support.destinations import TestDestination

START = datetime(2026, 1, 4, 22, tzinfo=UTC)
OLDER, NEWEST = "20260107T220000", "20260109T220000"  # Default: P3M
HAND = "20251201T000000"  # copied to the secondary by hand: never the instance's
SLOTS = {OLDER: START + timedelta(days=3), NEWEST: START + timedelta(days=5)}


@contextmanager
def _vault(
    dest: TestDestination, secondary: str, tmp_path: Path
) -> Iterator[tuple[OpenVault, JobStore, BackupInstance]]:
    instance = BackupInstance(
        "db", SERVER, Datasource("host=/tmp"), "p", created=START,
        secondary_destination=secondary, secondary_retention=SecondaryRetention.FOLLOW,
    )  # fmt: skip
    with dest.store() as store, JobStore.open(str(tmp_path)) as jobs:
        vault_store = VaultStore(store, "v1")
        vault = Vault("v1", dest.url)
        vault_store.create(vault)
        vault_store.create_policy("p", parse_policy(json.dumps(edited_policy())))
        vault_store.create_instance(instance)
        for backup_id, slot in SLOTS.items():
            put_backup(dest, backup_id)
            record = RunRecord(
                "db", slot, "BackupWeekly", RunTrigger.SCHEDULED, RunState.SUCCEEDED,
                "host:1", "Default", None, backup_id, slot,
            )  # fmt: skip
            assert vault_store.claim_run(record)
        record_copy(store, SERVER, [OLDER, NEWEST], public_url(parse_location(secondary)))
        yield OpenVault(entry_for(vault, None, dest.config), vault_store), jobs, instance


def _facts(outcomes: list[RetentionOutcome]) -> list[tuple[str, str, str, str | None]]:
    return [(o.backup_id, o.store, o.result, o.reason) for o in outcomes]


def _ids(dest: TestDestination) -> list[str]:
    with dest.store() as store:
        return [b.backup_id for b in Catalog(store, SERVER).backups()]


def test_a_held_copy_waits_in_the_secondary_and_goes_on_a_later_pass(
    make_dest: Callable[..., TestDestination],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dest, sec = make_dest("file"), make_dest("s3", object_lock=True)
    for name, value in sec.env.items():
        monkeypatch.setenv(name, value)  # the secondary's credentials: the agent's environment
    url = f"{sec.url}?AWS_ENDPOINT={sec.config.endpoint_url}"
    for backup_id in (HAND, OLDER, NEWEST):
        put_backup(sec, backup_id)
    s3 = boto3.client(
        "s3",
        endpoint_url=sec.config.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    prefix = sec.url.removeprefix(f"s3://{sec.bucket}/").rstrip("/")
    info = f"{prefix}/{SERVER}/base/{OLDER}/backup.info"
    s3.put_object_legal_hold(Bucket=sec.bucket, Key=info, LegalHold={"Status": "ON"})
    with _vault(dest, url, tmp_path) as (opened, jobs, instance):
        policy = opened.store.get_policy("p")
        first = apply_retention(opened, jobs, instance, policy, START + timedelta(days=213))
        held = "legal hold on 1 object (held until the hold is removed)"
        assert _facts(first) == [
            (NEWEST, "VaultStore", "held", "the newest good backup is never deleted"),
            (OLDER, "VaultStore", "done", None),
            (OLDER, url, "held", held),
        ]
        assert secondary_failures(instance, first) == []
        assert _ids(dest) == [NEWEST]
        assert _ids(sec) == [HAND, OLDER, NEWEST]
        assert pending(opened, instance) == {OLDER}
        assert sorted(read_copies(opened.store.store, SERVER)) == [NEWEST]

        s3.put_object_legal_hold(Bucket=sec.bucket, Key=info, LegalHold={"Status": "OFF"})
        later = apply_retention(opened, jobs, instance, policy, START + timedelta(days=214))
        assert _facts(later)[1:] == [(OLDER, url, "done", None)]
        assert _ids(sec) == [HAND, NEWEST]  # the hand copy and the kept backup's copy stay
        assert pending(opened, instance) == set()
        assert (
            apply_retention(opened, jobs, instance, policy, START + timedelta(days=215))[1:] == []
        )


def test_a_secondary_that_fails_fails_the_pass_not_the_primary_deletion(
    make_dest: Callable[..., TestDestination],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dest, sec = make_dest("file"), make_dest("s3", create=False)  # no bucket there
    for name, value in sec.env.items():
        monkeypatch.setenv(name, value)
    url = f"{sec.url}?AWS_ENDPOINT={sec.config.endpoint_url}"
    with _vault(dest, url, tmp_path) as (opened, jobs, instance):
        policy = opened.store.get_policy("p")
        outcomes = apply_retention(opened, jobs, instance, policy, START + timedelta(days=213))
        [(backup_id, store, result, reason)] = _facts(outcomes)[2:]
        assert (backup_id, store, result) == (OLDER, url, "failed")
        assert _facts(outcomes)[1] == (OLDER, "VaultStore", "done", None)
        assert sec.bucket in (reason or ""), reason
        [error] = secondary_failures(instance, outcomes)
        assert error.startswith(f"db: deleting backup {OLDER} in {url}: ")
        assert _ids(dest) == [NEWEST]
        assert pending(opened, instance) == {OLDER}  # tried again on the next pass


def test_simulate_shows_the_secondary_deletions_with_follow(tmp_path: Path) -> None:
    from core.protection.service import simulate_policy

    path = tmp_path / "policy.json"
    path.write_text(json.dumps(edited_policy()))
    kept = simulate_policy(str(path), START, 150)
    followed = simulate_policy(str(path), START, 150, "follow")
    deletions = [e for e in kept["events"] if e["event"] == "delete"]
    assert deletions and not [e for e in kept["events"] if e["store"] == "secondary"]
    pairs = [(e["backupId"], e["store"]) for e in followed["events"] if e["event"] == "delete"]
    assert pairs == [
        (e["backupId"], store) for e in deletions for store in (e["store"], "secondary")
    ]
    assert followed["keptAtEnd"] == kept["keptAtEnd"]


def test_an_incremental_staying_in_the_secondary_keeps_its_parent_there(
    make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    """An incremental on OLDER that is only in the secondary (copied by hand) is never the
    instance's to delete, so OLDER's copy stays until it is gone: the chain is not broken."""
    from core.catalog.backup_info import BackupInfo, serialize
    from core.catalog.layout import ServerLayout

    dest, sec = make_dest("file"), make_dest("file")
    incremental = "20260108T000000"
    put_backup(sec, OLDER)
    layout = ServerLayout(SERVER)
    info = BackupInfo(
        backup_id=incremental, status="DONE", parent_backup_id=OLDER, end_time=None,
        xlog_segment_size=16 * 1024 * 1024,
    )  # fmt: skip
    with sec.store() as store:
        store.put_bytes(layout.backup_info(incremental), serialize(info))
    with _vault(dest, sec.url, tmp_path) as (opened, jobs, instance):
        policy = opened.store.get_policy("p")
        first = apply_retention(opened, jobs, instance, policy, START + timedelta(days=213))
        why = f"incremental backup(s) {incremental} in the secondary need it"
        assert _facts(first)[1:] == [
            (OLDER, "VaultStore", "done", None),
            (OLDER, sec.url, "held", why),
        ]
        assert _ids(sec) == [OLDER, incremental]
        with sec.store() as store:  # the operator deletes the hand copy there
            store.delete_many([layout.backup_info(incremental)])
        later = apply_retention(opened, jobs, instance, policy, START + timedelta(days=214))
        assert _facts(later)[1:] == [(OLDER, sec.url, "done", None)]
        assert _ids(sec) == []
