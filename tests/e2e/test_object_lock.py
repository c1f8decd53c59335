"""backup-delete --check-object-lock on moto's S3 with a bucket created with Object Lock: a
backup with an object under retention or a legal hold is refused (exit 1, naming the object
and its date) and nothing is deleted; an unlocked one is deleted; off S3 the flag is bad
input (exit 3). WAL archived with `wal-archive --immutability-days` (archive_command, and its
--async pusher) is retained in GOVERNANCE mode, and a deletion keeps the WAL it frees while
it is locked."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.catalog import SERVER, archive_keys, archived_server, object_keys, wal_names
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.emulators import Emulator
from tests.support.fault_proxy import (
    Fault,
    FaultProxy,
    Script,
    Step,
    is_object_lock_configuration,
    through_proxy,
)
from tests.support.postgres import Cluster
from tests.support.wal import archived_names

MakeDest = Callable[..., TestDestination]


def s3_client(dest: TestDestination) -> Any:
    """boto3 on the destination's moto endpoint, to lock objects as an operator would."""
    return boto3.client(
        "s3",
        endpoint_url=dest.config.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def full_key(dest: TestDestination, key: str) -> str:
    return f"{dest.url.removeprefix(f's3://{dest.bucket}/').rstrip('/')}/{key}"


def test_a_backup_under_object_lock_is_refused_and_nothing_is_deleted(
    make_dest: MakeDest, cluster_factory: Callable[..., Cluster], pgvault_bin: str
) -> None:
    dest = make_dest("s3", object_lock=True)
    s3 = s3_client(dest)
    server = archived_server(cluster_factory, dest, pgvault_bin)
    first = server.backup()
    server.write_wal(1)
    second = server.backup()
    server.write_wal(1)
    locked = archive_keys(dest, first)[0]
    until = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    s3.put_object_retention(
        Bucket=dest.bucket,
        Key=full_key(dest, locked),
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
    )
    held = f"{SERVER}/base/{second}/backup_manifest"
    s3.put_object_legal_hold(
        Bucket=dest.bucket, Key=full_key(dest, held), LegalHold={"Status": "ON"}
    )
    before = object_keys(dest)

    refused = server.run("backup-delete", "-b", first, "--check-object-lock")
    assert refused.returncode == 1, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert f"{locked} is locked (GOVERNANCE) until {until.date().isoformat()}" in refused.stderr
    assert "nothing was deleted" in refused.stderr
    # A policy run that would delete the locked backup stops before deleting any.
    policy = server.run("backup-delete", "-r", "REDUNDANCY 1", "--check-object-lock")
    assert policy.returncode == 1 and locked in policy.stderr, policy.stderr
    legal = server.run("backup-delete", "-b", second, "--check-object-lock")
    assert legal.returncode == 1 and f"{held} has a legal hold" in legal.stderr, legal.stderr
    assert object_keys(dest) == before
    assert server.info(first).status == server.info(second).status == "DONE"

    # Once the hold is removed, the check lets the deletion go ahead.
    s3.put_object_legal_hold(
        Bucket=dest.bucket, Key=full_key(dest, held), LegalHold={"Status": "OFF"}
    )
    deleted = server.run("backup-delete", "-b", second, "--check-object-lock")
    assert deleted.returncode == 0, deleted.stderr
    remaining = object_keys(dest)
    assert not [k for k in remaining if k.startswith(f"{SERVER}/base/{second}/")]
    assert locked in remaining


def test_a_plain_delete_in_an_object_lock_bucket_checks_the_locks_by_itself(
    make_dest: MakeDest, cluster_factory: Callable[..., Cluster], pgvault_bin: str
) -> None:
    # Without --check-object-lock the deletion only added delete markers: the locked backup
    # left the catalog (backup-list no longer showed it) while S3 kept every version.
    dest = make_dest("s3", object_lock=True)
    s3 = s3_client(dest)
    server = archived_server(cluster_factory, dest, pgvault_bin)
    physical = server.backup()
    server.write_wal(1)
    made = server.run("backup", *server.cluster.conninfo_args(), "--database", "postgres")
    assert made.returncode == 0, made.stderr
    logical = made.stdout.strip()
    until = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    locked = [archive_keys(dest, physical)[0]]
    locked += sorted(k for k in object_keys(dest, f"{SERVER}/logical/{logical}/"))[:1]
    for key in locked:
        s3.put_object_retention(
            Bucket=dest.bucket,
            Key=full_key(dest, key),
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
        )
    before = object_keys(dest)
    for backup_id, key in zip((physical, logical), locked, strict=True):
        refused = server.run("backup-delete", "-b", backup_id)
        assert refused.returncode == 1, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert f"{key} is locked (GOVERNANCE) until {until.date().isoformat()}" in refused.stderr
        assert "nothing was deleted" in refused.stderr
    assert object_keys(dest) == before
    listed = server.run("backup-list", "--format", "json")
    assert physical in listed.stdout and logical in listed.stdout


@pytest.mark.parametrize("provider", ["file", "gcs"])
def test_check_object_lock_off_s3_is_bad_input(make_dest: MakeDest, provider: str) -> None:
    dest = make_dest(provider)
    result = pgvault(
        "backup-delete", *dest.cli_args, dest.url, SERVER, "-b", "20260101T000000",
        "--check-object-lock", env=dest.env,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "--check-object-lock applies to S3 destinations only" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert object_keys(dest) == set()


def _wal_locks(dest: TestDestination, server: str = SERVER) -> dict[str, tuple[str, datetime]]:
    """Each archived WAL file: its lock mode and retain-until date, as S3 reports them."""
    s3 = s3_client(dest)
    with dest.store() as store:
        keys = archived_names(store, server)
    found = {}
    for name, key in keys.items():
        answer = s3.head_object(Bucket=dest.bucket, Key=full_key(dest, key))
        found[name] = (answer.get("ObjectLockMode"), answer.get("ObjectLockRetainUntilDate"))
    return found


def test_wal_archived_with_immutability_days_is_locked_and_outlives_a_deletion(
    make_dest: MakeDest, cluster_factory: Callable[..., Cluster], pgvault_bin: str, tmp_path: Path
) -> None:
    dest = make_dest("s3", object_lock=True)
    written = datetime.now(UTC)
    server = archived_server(cluster_factory, dest, pgvault_bin, "--immutability-days", "2")
    first = server.backup()  # the backups themselves are not locked (no vault here)
    server.write_wal(1)
    second = server.backup()
    server.write_wal(1)
    locks = _wal_locks(dest)
    assert len(locks) >= 4, locks  # segments and the backups' .backup history files
    for mode, until in locks.values():
        assert mode == "GOVERNANCE"
        assert written + timedelta(days=2) <= until + timedelta(seconds=1)
        assert until <= datetime.now(UTC) + timedelta(days=2)
    before = wal_names(dest)

    # deleting the oldest backup frees the WAL before the second one: still locked, it stays
    # (as current objects, not hidden behind delete markers); the backup itself goes
    deleted = server.run("backup-delete", "-b", first, "--check-object-lock", "-v")
    assert deleted.returncode == 0, deleted.stderr
    assert "kept under S3 Object Lock until" in deleted.stdout + deleted.stderr
    assert wal_names(dest) == before
    assert not [k for k in object_keys(dest) if k.startswith(f"{SERVER}/base/{first}/")]
    assert server.info(second).status == "DONE"

    # the --async pusher writes under the same lock (its request carries the setting)
    segment = sorted(n for n in before if len(n) == 24)[0]
    # a pg_wal as PostgreSQL leaves it for archive_command: the file and its .ready marker
    (tmp_path / "pg_wal" / "archive_status").mkdir(parents=True)
    (tmp_path / "pg_wal" / "archive_status" / f"{segment}.ready").touch()
    copy = tmp_path / "pg_wal" / segment
    copy.write_bytes(Path(server.cluster.data, "pg_wal", segment).read_bytes())
    pushed = pgvault(
        "wal-archive", "--async", "--spool-dir", str(tmp_path / "spool"),
        "--immutability-days", "2", *dest.cli_args, dest.url, "other", str(copy),
        env=dest.env,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    assert [mode for mode, _ in _wal_locks(dest, "other").values()] == ["GOVERNANCE"]


def test_a_store_answering_501_for_the_lock_configuration_is_warned_about_not_retried(
    make_dest: MakeDest,
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    emulators: dict[str, Emulator],
) -> None:
    """An S3-compatible store without GetObjectLockConfiguration (501 NotImplemented) has no
    Object Lock to check: one warning, the check skipped, as for a denied request; not
    retried as a server error and ended with exit 2."""
    direct = make_dest("s3")
    server = archived_server(cluster_factory, direct, pgvault_bin)
    first = server.backup()
    server.write_wal(1)
    second = server.backup()
    plan = Script([Step(is_object_lock_configuration, Fault.NOT_IMPLEMENTED, times=10)])
    with FaultProxy(emulators["s3"].port, plan) as proxy:
        dest = through_proxy(direct, emulators, proxy)
        deleted = pgvault(
            "backup-delete", *dest.cli_args, dest.url, SERVER, "-b", first, env=dest.env
        )
        asked = [path for _, path, fault in proxy.seen if fault is Fault.NOT_IMPLEMENTED]
    assert deleted.returncode == 0, deleted.stderr
    assert "Traceback" not in deleted.stderr
    warnings = [line for line in deleted.stderr.splitlines() if "Object Lock" in line]
    assert len(warnings) == 1, deleted.stderr
    assert "cannot tell whether the bucket has S3 Object Lock" in warnings[0]
    assert "501" in warnings[0] and "not checked" in warnings[0]
    assert len(asked) == 1, asked  # asked once, not retried
    assert server.info(second).status == "DONE"
    assert not [k for k in object_keys(direct) if k.startswith(f"{SERVER}/base/{first}/")]
