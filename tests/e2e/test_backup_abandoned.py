"""A backup whose owner is provably gone is ABANDONED: listed so, never protecting WAL, removed
by retention and by backup-delete -b. A backup of another machine that shares this host's
name is judged by its heartbeat alone, never by this machine's process table.

The dead owner is a real `pgvault backup` killed with SIGKILL; the other machine is only
the identity fields of a lease object."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable

from core.catalog.backup_info import FAILED, STARTED, BackupInfo, serialize
from core.catalog.layout import PGVAULT_MANIFEST, ServerLayout
from core.catalog.manifest import PgvaultManifest, dump_pgvault
from core.catalog.owner import lease_body, lease_key
from core.storage import ObjectStore
from tests.support.catalog import SERVER, ArchivedServer, archived_server, json_out, wal_names
from tests.support.cli import spawn
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster

# 2 MiB/s and 5 MiB parts: copying PGDATA takes long enough to kill the backup mid-way.
SLOW = ("--max-bandwidth", "2MB", "-S", "10GB")
# Slower still: it runs through every check the test makes while it is alive, under load.
CRAWL = ("--max-bandwidth", "256KB", "-S", "10GB")


def _entries(server: ArchivedServer) -> dict[str, dict[str, object]]:
    data = json_out(server.run("backup-list", "--format", "json"))
    return {e["backup_id"]: e for e in data["backups_list"]}  # type: ignore[union-attr,index]


def _kill_mid_backup(server: ArchivedServer) -> str:
    """Start a slow backup, SIGKILL it while it uploads PGDATA; its backup ID."""
    dest = server.dest
    before = set(_entries(server))
    proc = spawn(
        "backup",
        "--immediate-checkpoint",
        *SLOW,
        *server.cluster.conninfo_args(),
        *dest.cli_args,
        dest.url,
        SERVER,
        env=dest.env,
    )
    with dest.store() as store:
        deadline = time.monotonic() + 120
        while not store.list_pending_uploads(f"{SERVER}/base/"):
            assert time.monotonic() < deadline, "the backup never started uploading"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
    proc.kill()
    proc.wait(timeout=30)
    (killed,) = set(_entries(server)) - before
    return killed


def _grow_pgdata(cluster: Cluster) -> None:
    cluster.sql("create table if not exists filler(id int, pad text)")
    cluster.sql(
        "insert into filler select g, repeat(md5(g::text), 8) from generate_series(1, 60000) g"
    )


def test_a_killed_backup_is_abandoned_and_retention_removes_it(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
) -> None:
    dest = make_dest("s3")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    _grow_pgdata(server.cluster)
    first = server.backup()
    server.write_wal(2)
    killed = _kill_mid_backup(server)
    with dest.store() as store:
        # What a kill outside an upload leaves: nothing for the next backup's reaper to see.
        store.abort_pending_uploads(f"{SERVER}/base/")

    entry = _entries(server)[killed]
    assert entry["status"] == STARTED  # barman-cloud's field is untouched
    pgvault = entry["pgvault"]
    assert pgvault["shown_status"] == "ABANDONED", pgvault  # type: ignore[index]
    assert "is gone" in str(pgvault["abandoned"])  # type: ignore[index]
    text = server.run("backup-list")
    assert any(killed in line and "ABANDONED" in line for line in text.stdout.splitlines())
    shown = server.run("backup-show", killed)
    assert shown.returncode == 0, shown.stderr
    assert "ABANDONED (pgvault process" in shown.stdout

    server.write_wal(2)
    second = server.backup()
    begin = server.info(second).begin_wal
    assert begin is not None
    result = server.run("backup-delete", "-r", "REDUNDANCY 1")
    assert result.returncode == 0, result.stderr
    assert f"backup {killed} " in result.stdout
    assert set(_entries(server)) == {second}
    segments = sorted(n for n in wal_names(dest) if len(n) == 24)
    # The abandoned backup held nothing back: every WAL before the kept backup's went.
    assert segments and segments[0] >= begin[:24], (segments[:3], begin)
    assert first not in _entries(server)


def _foreign_started(dest: TestDestination, backup_id: str, lease: dict[str, object]) -> None:
    """A STARTED pgvault backup whose lease names `lease` (as another machine writes it)."""
    layout = ServerLayout(SERVER)
    info = BackupInfo(
        backup_id=backup_id,
        status=STARTED,
        server_name=SERVER,
        begin_wal="000000010000000000000001",
        timeline=1,
        xlog_segment_size=16 * 1024 * 1024,
    )
    manifest = PgvaultManifest(
        backup_id=backup_id,
        server=SERVER,
        state="running",
        pgvault_version="0",
        started="2026-01-01T00:00:00+00:00",
        lease=lease,
    )
    with dest.store() as store:
        store.put_bytes(layout.backup_info(backup_id), serialize(info))
        store.put_bytes(layout.backup_file(backup_id, PGVAULT_MANIFEST), dump_pgvault(manifest))
        _put_lease(store, backup_id, lease)


def _put_lease(store: ObjectStore, backup_id: str, lease: dict[str, object]) -> None:
    timeout = int(lease.pop("timeout", 1800))  # type: ignore[call-overload]
    store.put_bytes(lease_key(ServerLayout(SERVER), backup_id), lease_body(lease, timeout))


def test_a_namesake_host_is_judged_by_its_heartbeat_only(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
) -> None:
    dest = make_dest("file")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    server.backup()
    backup_id = "20991231T235959"
    # Another machine with this host's name: its boot and machine IDs differ, its PID means
    # nothing here (no such process on this machine).
    other = {
        "host": socket.gethostname(),
        "machine_id": uuid.uuid4().hex,
        "boot_id": str(uuid.uuid4()),
        "pid_ns": "pid:[1]",
        "pid": 4_000_000,
        "pid_start": "1",
        "token": uuid.uuid4().hex,
    }
    _foreign_started(dest, backup_id, dict(other))

    entry = _entries(server)[backup_id]
    assert entry["pgvault"]["shown_status"] == STARTED  # type: ignore[index]
    refused = server.run("backup-delete", "-b", backup_id)
    assert refused.returncode == 1, refused.stderr
    assert "may still be running" in refused.stderr
    assert "renewed its lease" in refused.stderr

    # The same lease, not renewed for longer than its timeout: the owner is gone.
    with dest.store() as store:
        _put_lease(store, backup_id, {**other, "timeout": 1})
    time.sleep(2.5)
    entry = _entries(server)[backup_id]
    assert entry["pgvault"]["shown_status"] == "ABANDONED"  # type: ignore[index]
    assert "has not renewed its lease" in str(entry["pgvault"]["abandoned"])  # type: ignore[index]
    deleted = server.run("backup-delete", "-b", backup_id)
    assert deleted.returncode == 0, deleted.stderr
    assert backup_id not in _entries(server)


def test_a_running_backup_is_neither_abandoned_nor_deletable(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
) -> None:
    dest = make_dest("s3")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    _grow_pgdata(server.cluster)
    proc = spawn(
        "backup",
        "--immediate-checkpoint",
        *CRAWL,
        *server.cluster.conninfo_args(),
        *dest.cli_args,
        dest.url,
        SERVER,
        env=dest.env,
    )
    try:
        deadline = time.monotonic() + 120
        while not _entries(server):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        with dest.store() as store:
            deadline = time.monotonic() + 60
            layout = ServerLayout(SERVER)
            (running,) = _entries(server)
            while not store.exists(lease_key(layout, running)):
                assert time.monotonic() < deadline
                time.sleep(0.2)
            lease = json.loads(store.get_bytes(lease_key(layout, running)))
        assert lease["pid"] == proc.pid and lease["token"]
        assert _entries(server)[running]["pgvault"]["shown_status"] == STARTED  # type: ignore[index]
        refused = server.run("backup-delete", "-b", running)
        assert refused.returncode == 1 and "is running" in refused.stderr, refused.stderr
        retention = server.run("backup-delete", "-r", "REDUNDANCY 1")
        assert retention.returncode == 0, retention.stderr
        assert running in _entries(server)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    # Killed now: the next backup's reaper marks it FAILED.
    server.backup()
    assert server.info(running).status == FAILED
