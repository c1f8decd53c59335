"""`backup` as a Barman post_backup_retry_script: a real Barman server (3.19.1) backs up a real
PostgreSQL with pg_basebackup, the hook uploads that backup, and both pgvault restore and
barman-cloud-restore bring it back; PostgreSQL recovers on it and the tables match."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from tests.support.barman_server import SERVER, BarmanServer, make_barman_server, state_dir
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.pitr import Target, new_target, restore, restored_server, start_clean, wait_log
from tests.support.postgres import add_tablespace, chown_tree, wait_for_recovery_end
from tests.support.restore import run_barman
from tests.support.wal import restore_command

PASSPHRASE = "barman hook test passphrase 51c2"


def _passphrase_file(directory: str) -> str:
    path = os.path.join(directory, "pass")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
        fh.write(PASSPHRASE)
    return path


def _fill(server: BarmanServer) -> dict[str, tuple[int, str]]:
    cluster = server.cluster
    add_tablespace(cluster, "ts1")
    cluster.sql("create table accounts(id int primary key, note text)")
    cluster.sql("insert into accounts select g, md5(g::text) from generate_series(1, 20000) g")
    cluster.sql("create table blobs(id int, payload text) tablespace ts1")
    cluster.sql(
        "insert into blobs select g, repeat(md5(g::text), 50) from generate_series(1, 500) g"
    )
    cluster.sql("checkpoint")
    return cluster.table_checksums()


@pytest.fixture
def barman_s3(
    make_dest: Callable[..., TestDestination], pgvault_bin: str
) -> Iterator[tuple[BarmanServer, TestDestination]]:
    dest = make_dest("s3")
    server = make_barman_server(dest, pgvault_bin)
    yield server, dest
    server.drop()


@pytest.fixture
def barman_file(
    make_dest: Callable[..., TestDestination], pgvault_bin: str
) -> Iterator[tuple[BarmanServer, TestDestination]]:
    dest = make_dest("file")
    server = make_barman_server(dest, pgvault_bin, hook=False)
    yield server, dest
    server.drop()


def _recover(
    data: str, dest: TestDestination, pgvault_bin: str, bindir: str, tablespaces: dict[str, str]
) -> dict[str, tuple[int, str]]:
    """Start PostgreSQL on a restored directory, WAL from the destination, to the backup's end."""
    open(os.path.join(data, "recovery.signal"), "w").close()
    if os.geteuid() == 0:
        shutil.chown(os.path.join(data, "recovery.signal"), "postgres", "postgres")
    server = start_clean(
        data,
        bindir,
        env=dest.env,
        settings={
            "restore_command": restore_command(pgvault_bin, dest.url, *dest.cli_args),
            "recovery_target": "immediate",
            "recovery_target_action": "promote",
            "archive_mode": "off",
        },
    )
    try:
        wait_for_recovery_end(server)
        wait_log(server, "archive recovery complete")
        return server.table_checksums()
    finally:
        server.stop("immediate")


def _started(target: Target, bindir: str) -> dict[str, tuple[int, str]]:
    """PostgreSQL on a directory pgvault restored, recovering as the restore set it up."""
    with restored_server(target, bindir) as server:
        wait_for_recovery_end(server)
        return server.table_checksums()


def restored_both_ways(
    dest: TestDestination,
    backup_id: str,
    bindir: str,
    pgvault_bin: str,
    with_pgvault: Target,
    with_barman: Target,
) -> tuple[dict[str, tuple[int, str]], dict[str, tuple[int, str]]]:
    """The tables of the backup restored by pgvault and by barman-cloud-restore, each started."""
    ts = os.path.join(with_pgvault.base, "ts1")
    restore(dest, with_pgvault, backup_id, "--tablespace", f"ts1:{ts}")
    by_pgvault = _started(with_pgvault, bindir)
    ts = os.path.join(with_barman.base, "ts1")
    run_barman(
        "restore", dest, f"--tablespace=ts1:{ts}", dest.url, SERVER, backup_id, with_barman.data
    )
    return by_pgvault, _recover(with_barman.data, dest, pgvault_bin, bindir, {"ts1": ts})


def test_barman_runs_the_hook_and_both_restores_give_the_same_tables(
    barman_s3: tuple[BarmanServer, TestDestination], pgvault_bin: str
) -> None:
    server, dest = barman_s3
    tables = _fill(server)
    backup_id, output = server.backup()
    assert "post_backup_retry_script" in output or backup_id in output

    listed = run_barman("backup-list", dest, "--format", "json", dest.url, SERVER)
    ids = [b["backup_id"] for b in json.loads(listed.stdout)["backups_list"]]
    assert ids == [backup_id]
    with dest.store() as store:
        keys = sorted(o.key for o in store.list_objects(f"{SERVER}/base/{backup_id}/"))
        stored_info = store.get_bytes(f"{SERVER}/base/{backup_id}/backup.info")
    oid = str(server.cluster.one("select oid from pg_tablespace where spcname = 'ts1'"))
    assert keys == [
        f"{SERVER}/base/{backup_id}/{oid}.tar",
        f"{SERVER}/base/{backup_id}/backup.info",
        f"{SERVER}/base/{backup_id}/backup_manifest",
        f"{SERVER}/base/{backup_id}/data.tar",
        f"{SERVER}/base/{backup_id}/pgvault.json",
    ]
    with open(server.info_path(backup_id), "rb") as fh:
        assert stored_info == fh.read()  # Barman's backup.info, as barman-cloud stores it

    bindir = server.cluster.bindir
    with_pgvault = new_target()
    with_barman = new_target()
    try:
        restored = restored_both_ways(
            dest, backup_id, bindir, pgvault_bin, with_pgvault, with_barman
        )
        assert restored == (tables, tables)
    finally:
        with_pgvault.drop()
        with_barman.drop()


def test_the_upload_is_a_job_with_progress_and_a_retry_keeps_it(
    barman_s3: tuple[BarmanServer, TestDestination],
) -> None:
    server, dest = barman_s3
    _fill(server)
    backup_id, _ = server.backup()
    jobs_env = {"PGVAULT_STATE_DIR": state_dir(server)}
    jobs = pgvault("jobs", "list", "--format", "json", env=jobs_env)
    assert jobs.returncode == 0, jobs.stderr
    rows = json.loads(jobs.stdout)
    hook_jobs = [j for j in rows if j["kind"] == "barman-hook"]
    assert len(hook_jobs) == 1 and hook_jobs[0]["state"] == "succeeded", rows
    shown = pgvault("jobs", "show", str(hook_jobs[0]["id"]), "--format", "json", env=jobs_env)
    record = json.loads(shown.stdout)
    assert record["result"]["backup_id"] == backup_id
    assert hook_jobs[0]["bytes_done"] == hook_jobs[0]["bytes_total"] > 1_000_000, hook_jobs
    assert record["description"].startswith(f"upload of Barman backup {backup_id}")

    with dest.store() as store:
        before = {o.key: o.size for o in store.list_objects(f"{SERVER}/base/")}
    again = pgvault(
        "backup",
        *dest.cli_args,
        dest.url,
        SERVER,
        "-v",
        env={**dest.env, **server.hook_env(backup_id)},
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == backup_id
    assert "already in the destination" in again.stderr
    with dest.store() as store:
        assert {o.key: o.size for o in store.list_objects(f"{SERVER}/base/")} == before


def test_an_encrypted_server_gets_age_parts_that_pgvault_restores(
    barman_file: tuple[BarmanServer, TestDestination],
) -> None:
    server, dest = barman_file
    passfile = _passphrase_file(server.base)
    made = pgvault("keys", "init", "--encryption-passphrase-file", passfile, dest.url, SERVER)
    assert made.returncode == 0, made.stderr
    chown_tree(dest.bucket)  # the server's WAL and Barman's hook write there as postgres
    tables = _fill(server)
    backup_id, _ = server.backup()  # no hook configured: run it as Barman would
    hooked = pgvault("backup", dest.url, SERVER, env={**dest.env, **server.hook_env(backup_id)})
    assert hooked.returncode == 0, hooked.stderr
    prefix = f"{SERVER}/base/{backup_id}/"
    with dest.store() as store:
        names = sorted(o.key[len(prefix) :] for o in store.list_objects(prefix))
        sealed = [store.get_bytes(prefix + n) for n in ("pgvault.json", "backup_manifest")]
    assert names[0].endswith(".tar.age") and names[1:] == [
        "backup.info",
        "backup_manifest",
        "data.tar.age",
        "pgvault.json",
    ], names
    # the manifests name every file: sealed to the server's key like pgvault's own backups
    assert all(raw.startswith(b"age-encryption.org/v1\n") for raw in sealed)
    target = new_target()
    try:
        ts = os.path.join(target.base, "ts1")
        passfile = _passphrase_file(target.base)
        result = restore(
            dest,
            target,
            backup_id,
            "--tablespace",
            f"ts1:{ts}",
            "--encryption-passphrase-file",
            passfile,
        )
        assert result.returncode == 0, result.stderr
        assert _started(target, server.cluster.bindir) == tables
    finally:
        target.drop()
