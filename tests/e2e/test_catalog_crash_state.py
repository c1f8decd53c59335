"""Catalog state that outlives a crash: a deletion killed mid-way never leaves a backup listed
DONE, a damaged backup.info or pgvault.json breaks only its own backup, the server lock keeps
retention and delete apart, and a restore without a target checks the WAL it will replay."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable

import pytest

from core.catalog.backup_info import DONE, FAILED, BackupInfo, serialize
from core.catalog.layout import PGVAULT_MANIFEST, ServerLayout
from core.catalog.lock import lock_key, server_lock
from core.errors import OperationFailed
from tests.support.catalog import (
    SERVER,
    ArchivedServer,
    archived_server,
    json_out,
    put_backup,
)
from tests.support.cli import pgvault, spawn
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster, start_restored, wait_for_recovery_end, world_dir
from tests.support.restore import run_barman

LAYOUT = ServerLayout(SERVER)


def _listing(dest: TestDestination) -> dict[str, object]:
    result = pgvault(
        "backup-list", "--format", "json", *dest.cli_args, dest.url, SERVER, env=dest.env
    )
    return json_out(result)


def _shown(dest: TestDestination) -> dict[str, str]:
    entries = _listing(dest)["backups_list"]
    return {e["backup_id"]: e["pgvault"]["shown_status"] for e in entries}  # type: ignore[union-attr,index]


def _delete(dest: TestDestination, *args: str) -> object:
    return pgvault("backup-delete", *dest.cli_args, dest.url, SERVER, *args, env=dest.env)


# ---- a deletion killed mid-way ------------------------------------------------------------------


def test_a_deletion_killed_midway_is_never_listed_done(
    make_dest: Callable[..., TestDestination],
) -> None:
    dest = make_dest("s3")
    doomed, newer = "20260101T000000", "20260102T000000"
    put_backup(dest, doomed, begin="000000010000000000000002", end="000000010000000000000002")
    put_backup(dest, newer, begin="000000010000000000000004", end="000000010000000000000004")
    with dest.store() as store:
        for n in range(800):  # enough objects that deleting them one per request takes a while
            store.put_bytes(LAYOUT.backup_file(doomed, f"pgvault-checkpoint/{n}.json"), b"{}")
        total = len(list(store.list_objects(LAYOUT.backup_prefix(doomed))))
        proc = spawn(
            "backup-delete",
            "--batch-size",
            "1",
            *dest.cli_args,
            dest.url,
            SERVER,
            "-b",
            doomed,
            env=dest.env,
        )
        deadline = time.monotonic() + 300
        while len(list(store.list_objects(LAYOUT.backup_prefix(doomed)))) > total - 50:
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=30)
        assert store.exists(LAYOUT.backup_info(doomed))  # half-deleted

    assert _shown(dest) == {doomed: "DELETING", newer: DONE}
    barman = run_barman("backup-list", dest, "--format", "json", dest.url, SERVER)
    statuses = {b["backup_id"]: b["status"] for b in json.loads(barman.stdout)["backups_list"]}
    assert statuses == {doomed: FAILED, newer: DONE}  # barman-cloud never restores it either
    target = world_dir("pgvault-deleting-")
    try:
        refused = pgvault(
            "restore", *dest.cli_args, dest.url, SERVER, doomed, f"{target}/data", env=dest.env
        )
        assert refused.returncode == 1, refused.stderr
    finally:
        shutil.rmtree(target, ignore_errors=True)

    # Retention finishes what the killed run began (its lock died with its process).
    finished = _delete(dest, "-r", "REDUNDANCY 1")
    assert finished.returncode == 0, finished.stderr  # type: ignore[attr-defined]
    assert _shown(dest) == {newer: DONE}
    with dest.store() as store:
        assert not list(store.list_objects(LAYOUT.backup_prefix(doomed)))


# ---- the server lock ----------------------------------------------------------------------------


def test_delete_and_retention_wait_for_the_server_lock(
    make_dest: Callable[..., TestDestination],
) -> None:
    dest = make_dest("s3")
    put_backup(dest, "20260101T000000")
    put_backup(dest, "20260102T000000")
    with dest.store() as store, server_lock(store, SERVER, "backup --resume 2026 (the test)"):
        for args in (["-b", "20260101T000000"], ["-r", "REDUNDANCY 1"]):
            busy = _delete(dest, *args)
            assert busy.returncode == 1, busy.stderr  # type: ignore[attr-defined]
            assert f"server {SERVER} is busy" in busy.stderr  # type: ignore[attr-defined]
            assert "backup --resume 2026 (the test)" in busy.stderr  # type: ignore[attr-defined]
            assert "Traceback" not in busy.stderr  # type: ignore[attr-defined]
        assert set(_shown(dest)) == {"20260101T000000", "20260102T000000"}
    with dest.store() as store:
        assert not store.exists(lock_key(SERVER))  # released
    done = _delete(dest, "-r", "REDUNDANCY 1")
    assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
    assert set(_shown(dest)) == {"20260102T000000"}


def test_a_stale_lock_expires(make_dest: Callable[..., TestDestination]) -> None:
    dest = make_dest("s3")
    put_backup(dest, "20260101T000000")
    crashed = {
        "token": uuid.uuid4().hex,
        "host": "gone",
        "pid": 1,
        "operation": "a crash",
        "timeout": 1,
    }
    with dest.store() as store:
        store.put_bytes(lock_key(SERVER), json.dumps(crashed).encode())
    time.sleep(2.5)
    result = _delete(dest, "-b", "20260101T000000")
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    with dest.store() as store:
        assert not [o.key for o in store.list_objects(f"{SERVER}/pgvault-lock")]


def test_one_of_many_concurrent_takers_wins(make_dest: Callable[..., TestDestination]) -> None:
    dest = make_dest("s3")
    won: list[str] = []
    busy: list[str] = []
    start = threading.Barrier(6)

    def take(n: int) -> None:
        with dest.store() as store:
            start.wait()
            try:
                with server_lock(store, SERVER, f"taker {n}"):
                    won.append(f"taker {n}")
                    time.sleep(1)
            except OperationFailed as exc:
                busy.append(str(exc))

    threads = [threading.Thread(target=take, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(busy) == 5, (won, busy)
    assert all(won[0] in message for message in busy)


# ---- a damaged catalog file, and a restore's WAL check -----------------------------------------


def _damage(dest: TestDestination) -> tuple[str, str]:
    """A backup.info that parses into nonsense, and an incremental with a damaged pgvault.json."""
    bad_info, bad_json = "20000101T000000", "20000102T000000"
    with dest.store() as store:
        store.put_bytes(LAYOUT.backup_info(bad_info), b"status=DONE\ntablespaces=[1]\n")
        info = BackupInfo(backup_id=bad_json, status=DONE, parent_backup_id=bad_info)
        store.put_bytes(LAYOUT.backup_info(bad_json), serialize(info))
        store.put_bytes(LAYOUT.backup_file(bad_json, PGVAULT_MANIFEST), b"[1]")
    return bad_info, bad_json


def _restore(server: ArchivedServer, target: str, *flags: str) -> object:
    dest = server.dest
    return pgvault(
        "restore",
        "--pgvault-command",
        server.pgvault_bin,
        *flags,
        *dest.cli_args,
        dest.url,
        SERVER,
        "latest",
        target,
        env=dest.env,
    )


@pytest.fixture
def damaged(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
) -> ArchivedServer:
    server = archived_server(cluster_factory, make_dest("file"), pgvault_bin)
    server.pgvault_bin = pgvault_bin  # type: ignore[attr-defined]
    return server


def test_a_damaged_catalog_file_breaks_only_its_backup(damaged: ArchivedServer) -> None:
    server, dest = damaged, damaged.dest
    server.cluster.sql(
        "create table t as select g as id, md5(g::text) as v from generate_series(1, 5000) g"
    )
    good = server.backup()
    server.cluster.sql("insert into t select g, 'after' from generate_series(5001, 6000) g")
    server.write_wal(2)
    expected = server.cluster.table_checksums()
    bad_info, bad_json = _damage(dest)

    listing = _listing(dest)
    assert [b["backup_id"] for b in listing["broken"]] == [bad_info]  # type: ignore[index]
    assert "unreadable backup.info" in listing["broken"][0]["error"]  # type: ignore[index]
    assert set(_shown(dest)) == {bad_json, good}
    text = server.run("backup-list")
    assert text.returncode == 0, text.stderr
    assert any(bad_info in line and "BROKEN" in line for line in text.stdout.splitlines())
    shown = server.run("backup-show", good)
    assert shown.returncode == 0, shown.stderr
    broken = server.run("backup-show", bad_info)
    assert broken.returncode == 1 and "Traceback" not in broken.stderr, broken.stderr

    work = world_dir("pgvault-broken-")
    try:
        restored = _restore(server, f"{work}/data")
        assert restored.returncode == 0, restored.stderr  # type: ignore[attr-defined]
        assert restored.stdout.strip() == good  # type: ignore[attr-defined]
        cluster = start_restored(f"{work}/data", server.cluster.bindir, env=dest.env)
        try:
            wait_for_recovery_end(cluster)
            assert cluster.table_checksums() == expected
        finally:
            cluster.drop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_a_restore_without_target_names_the_first_missing_segment(damaged: ArchivedServer) -> None:
    server, dest = damaged, damaged.dest
    good = server.backup()
    names = server.write_wal(3)
    hole = names[1]
    with dest.store() as store:
        key = next(o.key for o in store.list_objects(LAYOUT.wals_prefix) if hole in o.key)
        store.delete_many([key])
    work = world_dir("pgvault-gap-")
    try:
        refused = _restore(server, f"{work}/data")
        assert refused.returncode == 1, refused.stderr  # type: ignore[attr-defined]
        assert f"first missing segment {hole}" in refused.stderr  # type: ignore[attr-defined]
        assert "--accept-wal-gap" in refused.stderr  # type: ignore[attr-defined]
        assert not os.path.exists(f"{work}/data/PG_VERSION")
        accepted = _restore(server, f"{work}/data", "--accept-wal-gap", "-v")
        assert accepted.returncode == 0, accepted.stderr  # type: ignore[attr-defined]
        assert accepted.stdout.strip() == good  # type: ignore[attr-defined]
        assert hole in accepted.stderr  # type: ignore[attr-defined]
        targeted = _restore(server, f"{work}/other", "--target-immediate")
        assert targeted.returncode == 0, targeted.stderr  # type: ignore[attr-defined]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_a_resumed_backup_waits_for_the_server_lock(
    make_dest: Callable[..., TestDestination],
) -> None:
    from core.backup import BackupRequest, run_backup
    from core.urls import parse_location

    dest = make_dest("file")
    request = BackupRequest(
        location=parse_location(dest.url), server=SERVER, resume="20260101T000000"
    )
    with (
        dest.store() as store,
        server_lock(store, SERVER, "backup-delete -r (the test)"),
        pytest.raises(OperationFailed) as raised,
    ):
        run_backup(request)
    assert f"server {SERVER} is busy: backup-delete -r (the test)" in str(raised.value)
