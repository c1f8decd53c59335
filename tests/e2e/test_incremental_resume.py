"""A killed incremental resumed from its stored parts (`jobs resume`), on real servers.

An incremental of many changed tables is SIGKILLed once some of its parts are stored; a row
of a table held by the last stored part changes; `jobs resume` continues the same backup on
the same parent, keeps the parts before that one (their blocks are what it would store now)
and sends the rest again. The backup is restored as a chain, checked by pg_verifybackup,
started, and compared table by table with the source.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from core.backup.resume import StoredBackup, load_checkpoints
from core.catalog.layout import ServerLayout
from core.crypto.passphrase import PASSPHRASE_ENV
from core.jobs.liveness import DEAD_AFTER
from tests.e2e.test_encryption import PASSPHRASE, _keys, _passphrase_file
from tests.e2e.test_incremental import Chain, pg_verifybackup, tables
from tests.support.destinations import TestDestination, make_destination
from tests.support.jobs import pgvault, show, wait_for
from tests.support.pg_versions import server_bindir, server_env, versioned_cluster
from tests.support.pitr import SERVER, new_target, restore, restored_server
from tests.support.postgres import Cluster, wait_for_recovery_end
from tests.support.wal import archive_command

TABLES = 16


def _source(major: int, dest: TestDestination, pgvault_bin: str) -> Cluster:
    settings: dict[str, object] = {"summarize_wal": "on"} if major >= 17 else {}
    # Hint bits set later (autovacuum, first reads) would change pages between the killed
    # run and the resumed one: the cluster holds still unless the test changes it.
    cluster = versioned_cluster(
        major,
        archive_command=archive_command(pgvault_bin, dest.url, *dest.cli_args, "--zstd"),
        env=dest.env,
        settings={**settings, "wal_keep_size": "512MB", "autovacuum": "off"},
    )
    for n in range(TABLES):
        cluster.sql(f"create table t{n}(id int, note text)")
        cluster.sql(
            f"insert into t{n} select g, md5(g::text) || md5((g * {n + 7})::text) "
            "from generate_series(1, 30000) g"
        )
    cluster.sql("vacuum (freeze)")
    cluster.sql("checkpoint")
    segment = cluster.one("select pg_walfile_name(pg_current_wal_lsn())")
    cluster.sql("select pg_switch_wal()")
    cluster.wait_archived(segment, timeout=180)
    return cluster


@contextmanager
def _chain(major: int, pgvault_bin: str) -> Iterator[Chain]:
    dest = make_destination("file", {})
    cluster = _source(major, dest, pgvault_bin)
    try:
        yield Chain(cluster, dest, major)
    finally:
        cluster.drop()
        dest.drop()


@pytest.fixture(params=[15, 18])
def chain(request: pytest.FixtureRequest, pgvault_bin: str) -> Iterator[Chain]:
    with _chain(int(request.param), pgvault_bin) as made:
        yield made


@pytest.fixture
def chain15(pgvault_bin: str) -> Iterator[Chain]:
    with _chain(15, pgvault_bin) as made:
        yield made


def _kill_mid_way(state: Path, chain: Chain, env: dict[str, str] | None = None) -> tuple[int, str]:
    """A detached incremental in 1 MB parts, SIGKILLed once three are stored."""
    started = pgvault(
        state,
        "backup",
        "--immediate-checkpoint",
        "--zstd",
        "--incremental",
        "--detach",
        "--max-bandwidth",
        "1MB",
        "-S",
        "1MB",
        *chain.cluster.conninfo_args(),
        *chain.dest.cli_args,
        chain.dest.url,
        SERVER,
        env=chain.dest.env | (env or {}),
    )
    assert started.returncode == 0, started.stderr
    job_id = int(started.stdout.strip())
    with chain.dest.store() as store:
        wait_for(
            lambda: [o for o in store.list_objects("") if "/pgvault-checkpoint/" in o.key][2:],
            timeout=180,
            interval=0.2,
            what="three stored parts",
        )
    job = show(state, job_id)
    assert job["state"] == "running", job
    os.kill(job["pid"], signal.SIGKILL)
    failed = wait_for(
        lambda: (j := show(state, job_id))["state"] == "failed" and j,
        timeout=DEAD_AFTER + 30,
        interval=0.5,
        what="the killed job to be marked failed",
    )
    return job_id, str(failed["result"]["backup_id"])


def _stored_parts(chain: Chain, backup_id: str) -> list[Any]:
    with chain.dest.store() as store:
        found = load_checkpoints(StoredBackup(store, ServerLayout(SERVER), backup_id))
    return found["incremental_data"]


def test_a_killed_incremental_resumes_from_its_stored_parts(chain: Chain, tmp_path: Path) -> None:
    c = chain.cluster
    full = chain.backup()
    for n in range(TABLES):
        c.sql(f"update t{n} set note = upper(note)")
    c.sql("vacuum (freeze)")
    # Read now: a catalog read after the kill could set hint bits in stored catalog pages.
    files = dict(c.sql("select pg_relation_filepath(oid::regclass), relname from pg_class"))
    c.sql("checkpoint")
    state = tmp_path / "state"
    job_id, backup_id = _kill_mid_way(state, chain)
    parts = _stored_parts(chain, backup_id)
    assert len(parts) >= 3 and all(p.blocks for p in parts), parts
    # A table the last stored part holds changes: that part and the later ones are sent
    # again, the parts before it are kept.
    last = parts[-1]
    path = next(p for p in last.blocks if p in files and files[p].startswith("t"))
    table = files[path]
    c.sql(f"update {table} set note = 'changed' where id = 1")
    c.sql("checkpoint")
    resumed = pgvault(state, "jobs", "resume", str(job_id), env=chain.dest.env, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    new = json.loads(pgvault(state, "jobs", "list", "--format", "json", check=True).stdout)[0]
    assert new["resumed_from"] == job_id and new["state"] == "succeeded", new
    assert new["result"]["backup_id"] == backup_id
    log = pgvault(state, "jobs", "log", str(new["id"]), check=True).stdout
    assert f"{last.archive.filename}: {path} changed since, sent again" in log, log
    reused = new["result"]["reused_stored_bytes"]
    print(f"\nPostgreSQL {chain.major}: {len(parts)} parts stored when killed, {reused} bytes kept")
    assert reused == sum(p.archive.size for p in parts[:-1]) > 0, log
    manifest = chain.catalog().pgvault_manifest(backup_id)
    assert manifest is not None and manifest.incremental is not None
    assert manifest.incremental["kind"] == "incremental"
    assert manifest.incremental["parent"] == full
    assert chain.catalog().get(backup_id).parent_backup_id == full
    expected = tables(c)
    target = new_target()
    try:
        restore(chain.dest, target, backup_id, "--target-immediate", "--target-action", "promote")
        verified = pg_verifybackup(chain.major, "-n", target.data)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        with restored_server(target, server_bindir(chain.major), server_env(chain.major)) as db:
            wait_for_recovery_end(db)
            assert tables(db) == expected
    finally:
        target.drop()


def test_a_killed_incremental_whose_parent_is_gone_is_not_resumed(
    chain15: Chain, tmp_path: Path
) -> None:
    chain = chain15
    c = chain.cluster
    full = chain.backup()
    for n in range(TABLES):
        c.sql(f"update t{n} set note = lower(note) || '.'")
    state = tmp_path / "state"
    job_id, backup_id = _kill_mid_way(state, chain)
    # The killed backup names its parent: deleting the parent is refused...
    refused = pgvault(
        state, "backup-delete", "-b", full, *chain.dest.cli_args, chain.dest.url, SERVER
    )
    assert refused.returncode == 1 and backup_id in refused.stderr, refused.stderr
    # ...so it goes out of band.
    with chain.dest.store() as store:
        store.delete_many([o.key for o in store.list_objects(f"{SERVER}/base/{full}/")])
    resumed = pgvault(state, "jobs", "resume", str(job_id), env=chain.dest.env, timeout=300)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert f"cannot resume backup {backup_id} of server {SERVER}: its parent {full} is gone" in (
        resumed.stderr
    )
    assert "Traceback" not in resumed.stderr
    assert not chain.catalog().get(backup_id).is_done


def test_retention_leaves_a_killed_encrypted_incremental_for_jobs_resume(
    chain15: Chain, tmp_path: Path
) -> None:
    """A killed encrypted incremental stays STARTED where no host with the key ran a backup
    since (the reaper cannot mark it FAILED without the key). Retention run without the key
    left it alone only if it had been marked FAILED: now an interrupted backup, STARTED or
    FAILED, stays until a newer backup is DONE, and `jobs resume` continues it."""
    chain = chain15
    c = chain.cluster
    passfile = _passphrase_file(tmp_path)
    created = _keys(chain.dest, "init", "--encryption-passphrase-file", passfile)
    assert created.returncode == 0, created.stderr
    keyed = {PASSPHRASE_ENV: PASSPHRASE}
    full = chain.backup()
    for n in range(TABLES):
        c.sql(f"update t{n} set note = note || '!'")
    c.sql("checkpoint")
    state = tmp_path / "state"
    job_id, backup_id = _kill_mid_way(state, chain, keyed)
    entry = _listed(state, chain)[backup_id]
    assert (entry["status"], entry["pgvault"]["shown_status"]) == ("STARTED", "ABANDONED")
    # A write-only host's retention (no key); the full backup is the only DONE one.
    args = ("backup-delete", "-r", "REDUNDANCY 1", *chain.dest.cli_args, chain.dest.url, SERVER)
    retention = pgvault(state, *args, env=chain.dest.env)
    assert retention.returncode == 0, retention.stderr
    assert set(_listed(state, chain)) == {full, backup_id}, retention.stdout

    resumed = pgvault(state, "jobs", "resume", str(job_id), env=chain.dest.env | keyed, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert _listed(state, chain)[backup_id]["status"] == "DONE"
    expected = tables(c)
    target = new_target()
    try:
        restore(chain.dest, target, backup_id, "--encryption-passphrase-file", passfile)
        with restored_server(target, server_bindir(chain.major), server_env(chain.major)) as db:
            wait_for_recovery_end(db)
            assert tables(db) == expected
    finally:
        target.drop()


def _listed(state: Path, chain: Chain) -> dict[str, Any]:
    args = ("--format", "json", *chain.dest.cli_args, chain.dest.url, SERVER)
    listed = pgvault(state, "backup-list", *args, env=chain.dest.env, check=True)
    return {b["backup_id"]: b for b in json.loads(listed.stdout)["backups_list"]}
