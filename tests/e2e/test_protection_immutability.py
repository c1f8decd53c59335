"""vault create --immutability-days on moto's S3: refused off S3 and on a bucket without
Object Lock; on a lock bucket every object the agent's backups write is retained N days
(GOVERNANCE), retention holds an expired backup until its lock ends and says when, and the
locked backup restores. A backup an operator put under a legal hold (boto3) is held by
retention, reported as held with no end date, and deleted once the hold is removed."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.test_object_lock import full_key, s3_client
from tests.e2e.test_protection_agent import Agent, pt1m_policy, require_password
from tests.support.catalog import SERVER, archived_server, object_keys
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster, start_restored, world_dir
from tests.support.wal import archive_command, archived_names

MakeDest = Callable[..., TestDestination]
DAYS = 7


def _refused(dest: TestDestination, state: Path, *flags: str) -> str:
    result = pgvault(
        "vault", "create", "v1", "--destination", dest.url, *dest.cli_args, *flags,
        env={**dest.env, "PGVAULT_STATE_DIR": str(state)},
    )  # fmt: skip
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    return result.stderr


def test_immutability_needs_an_s3_bucket_with_object_lock(
    make_dest: MakeDest, tmp_path: Path
) -> None:
    local, azure, plain = make_dest("file"), make_dest("azure"), make_dest("s3")
    days = ("--immutability-days", str(DAYS))
    assert "is local-directory" in _refused(local, tmp_path / "a", *days)
    assert "is azure-blob-storage" in _refused(azure, tmp_path / "b", *days)
    error = _refused(plain, tmp_path / "c", *days)
    assert f"bucket {plain.bucket} does not have S3 Object Lock enabled" in error
    for dest in (local, azure, plain):
        assert object_keys(dest) == set()  # nothing stored


def _set_up(agent: Agent, cluster: Cluster, days: int | None = DAYS) -> None:
    lock = ("--immutability-days", str(days)) if days else ()
    created = agent.run(
        "vault", "create", "v1", "--destination", agent.dest.url, *agent.dest.cli_args, *lock,
    )  # fmt: skip
    assert (created["immutabilityDays"], created["attached"]) == (days, False)
    agent.run(
        "policy", "create", "--vault", "v1", "--name", "minutely",
        "--policy", agent.file("policy.json", pt1m_policy()),
    )  # fmt: skip
    instance = agent.run(
        "backup-instance", "initialize",
        "--datasource", f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres",
        "--server-name", SERVER, "--policy", "minutely",
        "--secret-store-type", "env", "--secret-store-uri", "PGV_PASSWORD",
    )  # fmt: skip
    agent.run(
        "backup-instance", "create", "--vault", "v1",
        "--backup-instance", agent.file("instance.json", instance),
    )  # fmt: skip


def _attach_elsewhere(dest: TestDestination, state: Path) -> None:
    """Another host attaches with the stored days; other days are refused, named."""
    other = Agent(dest, state)
    assert "immutabilityDays 7, not 3" in _refused(dest, state, "--immutability-days", "3")
    attached = other.run("vault", "create", "v1", "--destination", dest.url, *dest.cli_args)
    assert (attached["immutabilityDays"], attached["attached"]) == (DAYS, True)


def _wal_locks(dest: TestDestination) -> list[tuple[str, datetime]]:
    """Each archived WAL file in name order: its lock mode and retain-until date."""
    s3 = s3_client(dest)
    with dest.store() as store:
        keys = sorted(archived_names(store, SERVER).items())
    return [
        (
            (answer := s3.head_object(Bucket=dest.bucket, Key=full_key(dest, key))).get(
                "ObjectLockMode"
            ),
            answer.get("ObjectLockRetainUntilDate"),
        )
        for _, key in keys
    ]


def _retention_of(dest: TestDestination, backup_id: str) -> list[tuple[str, datetime]]:
    """Each object of a backup: its lock mode and retain-until date, as S3 reports them."""
    s3 = s3_client(dest)
    found = []
    for key in sorted(object_keys(dest, f"{SERVER}/base/{backup_id}/")):
        answer = s3.head_object(Bucket=dest.bucket, Key=full_key(dest, key))
        found.append((answer.get("ObjectLockMode"), answer.get("ObjectLockRetainUntilDate")))
    return found


def test_the_agents_backups_are_locked_and_retention_waits_for_the_lock(
    make_dest: MakeDest,
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    tmp_path: Path,
) -> None:
    dest = make_dest("s3", object_lock=True)
    server = archived_server(cluster_factory, dest, pgvault_bin)
    require_password(server.cluster)
    agent = Agent(dest, tmp_path / "state")
    _set_up(agent, server.cluster)
    _attach_elsewhere(dest, tmp_path / "other-host")
    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    second = timedelta(seconds=10)

    written = datetime.now(UTC)
    # archive_command without --immutability-days: the pass takes the backup and says that
    # the WAL it ends on is not locked (an error: exit 1), naming the flag to add
    reports = agent.run(
        "agent", "--once", "--vault", "v1", "--now", (base + second).isoformat(), code=1
    )
    first = reports[0]
    b1 = first["runs"][0]["backupId"]  # Daily: kept a day
    assert first["runs"][0]["state"] == "succeeded"
    (error,) = first["errors"]
    assert "is not under S3 Object Lock" in error and "--immutability-days 7" in error, error
    locked_wal = archive_command(
        pgvault_bin, dest.url, *dest.cli_args, "--immutability-days", str(DAYS), server=SERVER
    )
    server.cluster.sql(f"alter system set archive_command = '{locked_wal}'")
    server.cluster.sql("select pg_reload_conf()")
    server.write_wal(1)

    second_pass = agent.once(base + timedelta(minutes=1) + second)
    assert second_pass["errors"] == []  # its WAL is locked now
    b2 = second_pass["runs"][0]["backupId"]  # Default: 3 min
    wal_locks = _wal_locks(dest)
    assert {mode for mode, _ in wal_locks[-2:]} == {"GOVERNANCE"}, wal_locks
    tables = server.cluster.table_checksums()  # what b2 holds (restore stops at consistency)
    server.write_wal(1)
    for backup_id in (b1, b2):
        locks = _retention_of(dest, backup_id)
        assert len(locks) >= 4  # archive(s), backup_manifest, pgvault.json, backup.info
        for mode, until in locks:
            assert mode == "GOVERNANCE"
            assert written + timedelta(days=DAYS) <= until + timedelta(seconds=1)
            assert until <= datetime.now(UTC) + timedelta(days=DAYS)

    # b2 expired at minute 4: its deletion is due, its lock holds it and says until when.
    late = agent.once(base + timedelta(minutes=5) + second)
    b3 = late["runs"][0]["backupId"]
    (held,) = late["retention"]
    assert (held["backupId"], held["action"], held["result"]) == (b2, "delete", "held")
    until = max(u for _, u in _retention_of(dest, b2))
    assert held["until"] == until.isoformat()
    assert held["reason"] == f"locked until {until.isoformat()}"
    assert agent.backups() == [b1, b2, b3]
    assert agent.job_kinds() == ["backup", "backup", "backup"]  # no delete was tried

    # The locked backup is a backup: it restores and the data matches.
    target = os.path.join(world_dir("pgvault-immutable-"), "data")
    restored = server.run("restore", b2, target)
    assert restored.returncode == 0, restored.stderr
    started = start_restored(target, server.cluster.bindir, env=dest.env)
    try:
        assert started.table_checksums() == tables
    finally:
        started.stop()


def test_a_legal_hold_holds_a_backup_until_it_is_removed(
    make_dest: MakeDest,
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    tmp_path: Path,
) -> None:
    dest = make_dest("s3", object_lock=True)  # a lock bucket; the vault sets no retention
    server = archived_server(cluster_factory, dest, pgvault_bin)
    require_password(server.cluster)
    agent = Agent(dest, tmp_path / "state")
    _set_up(agent, server.cluster, days=None)
    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    second = timedelta(seconds=10)
    b1 = agent.once(base + second)["runs"][0]["backupId"]  # Daily: kept a day
    b2 = agent.once(base + timedelta(minutes=1) + second)["runs"][0]["backupId"]  # Default
    assert {mode for mode, _ in _retention_of(dest, b2)} == {None}  # no retention: only the hold
    # the operator puts one object of b2 under a legal hold, as for an investigation
    s3 = s3_client(dest)
    info = full_key(dest, f"{SERVER}/base/{b2}/backup.info")
    s3.put_object_legal_hold(Bucket=dest.bucket, Key=info, LegalHold={"Status": "ON"})

    # b2 expired at minute 4: retention holds it and says why, with no end date; no delete
    # job is tried (it would only fail on the hold)
    late = agent.once(base + timedelta(minutes=5) + second)
    b3 = late["runs"][0]["backupId"]
    assert late["retention"] == [
        {
            "action": "delete",
            "backupId": b2,
            "instance": SERVER,
            "reason": "legal hold on 1 object (held until the hold is removed)",
            "result": "held",
            "store": "VaultStore",
            "until": None,
        }
    ]
    assert late["errors"] == []
    assert agent.backups() == [b1, b2, b3]
    assert agent.job_kinds() == ["backup", "backup", "backup"]

    # the hold removed, the next pass deletes it
    s3.put_object_legal_hold(Bucket=dest.bucket, Key=info, LegalHold={"Status": "OFF"})
    freed = agent.once(base + timedelta(minutes=6) + second)
    assert [(r["backupId"], r["result"]) for r in freed["retention"]] == [(b2, "done")]
    assert b2 not in agent.backups()
    assert agent.job_kinds()[-1] == "delete"
