"""Backups as jobs, end to end: detached backups paused, resumed, cancelled, killed and resumed.

Every command is the real `pgvault` executable in its own process; backups are proven by
restoring them with barman-cloud-restore, starting PostgreSQL and comparing every table.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.catalog.backup_info import DONE, FAILED
from core.catalog.reader import Catalog
from core.jobs.liveness import DEAD_AFTER
from core.jobs.store import JobStore
from tests.support.destinations import TestDestination
from tests.support.jobs import PGVAULT, pgvault, show, wait_for
from tests.support.postgres import Cluster, wait_for_recovery_end
from tests.support.restore import barman_restore, restore_target, start_recovered
from tests.support.sample import archived_cluster, checksums, populate

SERVER = "pg15"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def source() -> Iterator[tuple[Cluster, str, dict[str, Any]]]:
    # Files that change by themselves (autovacuum rewriting pg_class, hint bits) would make
    # what a resumed backup can reuse depend on timing: the cluster holds still unless a
    # test changes it.
    cluster, archive = archived_cluster(settings={"autovacuum": "off"})
    try:
        populate(cluster, rows=60_000)
        for database in ("postgres", "sales"):
            cluster.sql("vacuum (freeze, analyze)", dbname=database)
        cluster.sql("checkpoint")
        yield cluster, archive, checksums(cluster)
    finally:
        cluster.drop()
        shutil.rmtree(archive, ignore_errors=True)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def backup_args(
    cluster: Cluster, dest: TestDestination, *flags: str, server: str = SERVER
) -> list[str]:
    return [
        "backup",
        "--immediate-checkpoint",
        "--no-wal-check",  # archive_command copies WAL to the directory the restores read
        *flags,
        *cluster.conninfo_args(),
        *dest.cli_args,
        dest.url,
        server,
    ]


def detach(
    state_dir: Path, cluster: Cluster, dest: TestDestination, *flags: str, server: str = SERVER
) -> int:
    result = pgvault(
        state_dir, *backup_args(cluster, dest, "--detach", *flags, server=server), env=dest.env
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].isdigit(), result.stdout  # the job id alone
    return int(lines[0])


def wait_end(state_dir: Path, job_id: int, timeout: float = 300) -> dict[str, Any]:
    return wait_for(
        lambda: (
            (j := show(state_dir, job_id))["state"] in ("succeeded", "failed", "cancelled") and j
        ),
        timeout=timeout,
        interval=0.5,
        what=f"job {job_id} to end",
    )


def backup_sessions(cluster: Cluster) -> int:
    return int(
        cluster.one(
            "select count(*) from pg_stat_activity where application_name like 'pgvault backup%'"
        )
    )


def restore_and_compare(
    cluster: Cluster, archive: str, tables: dict[str, Any], dest: TestDestination, backup_id: str
) -> None:
    target = restore_target(["ts1", "ts2"])
    try:
        barman_restore(dest, SERVER, backup_id, target)
        restored = start_recovered(target, cluster.bindir, archive)
        try:
            wait_for_recovery_end(restored)
            assert checksums(restored) == tables
        finally:
            restored.drop()
    finally:
        target.drop()


def test_a_paused_detached_backup_holds_still_then_resumes_and_restores(
    source: tuple[Cluster, str, dict[str, Any]], state_dir: Path, make_dest: object
) -> None:
    cluster, archive, tables = source
    dest: TestDestination = make_dest("s3")  # type: ignore[operator]
    job_id = detach(state_dir, cluster, dest, "--max-bandwidth", "3MB", "--keepalive-interval", "1")
    wait_for(
        lambda: (
            (j := show(state_dir, job_id))["phase"] == "copying files" and j["bytes_done"] > 4 * MiB
        ),
        timeout=120,
        what="the backup to copy",
    )
    paused = pgvault(state_dir, "jobs", "pause", str(job_id), "--wait", "--timeout", "5")
    assert paused.returncode == 0, paused.stderr
    time.sleep(1.0)  # what was in flight within the second lands
    first = show(state_dir, job_id)
    time.sleep(3.0)
    second = show(state_dir, job_id)
    assert first["state"] == second["state"] == "paused"
    assert first["bytes_done"] == second["bytes_done"] < second["bytes_total"]
    assert backup_sessions(cluster) == 1  # the PostgreSQL backup session stays alive
    assert second["result"]["backup_id"]

    resumed = pgvault(state_dir, "jobs", "resume", str(job_id))
    assert resumed.returncode == 0 and resumed.stdout.strip() == f"job {job_id}: resumed"
    done = wait_end(state_dir, job_id)
    assert done["state"] == "succeeded", done
    backup_id = done["result"]["backup_id"]
    assert done["bytes_done"] == done["bytes_total"]
    # The bandwidth chart shows the wire: near the cap from the first second (the data read
    # ahead into the parts in flight, 3 to 5 times the cap, is not bandwidth), nothing while
    # paused. The margin covers the limiter's burst and a slice counted a second late.
    rates = [s.rate for s in JobStore(state_dir / "jobs.db").samples(job_id)]
    assert max(rates) <= 3 * MiB * 1.6, [round(r / MiB, 1) for r in rates]
    # Every byte is charted but those of the last, unfinished second.
    assert rates.count(0.0) >= 3 and sum(rates) >= done["bytes_total"] - 3 * MiB * 1.3
    with dest.store() as store:
        assert Catalog(store, SERVER).resolve("latest").backup_id == backup_id
        assert store.list_pending_uploads("") == []
    assert backup_sessions(cluster) == 0
    restore_and_compare(cluster, archive, tables, dest, backup_id)


def test_a_cancelled_backup_leaves_nothing_restorable(
    source: tuple[Cluster, str, dict[str, Any]], state_dir: Path, make_dest: object
) -> None:
    cluster, _, _ = source
    dest: TestDestination = make_dest("s3")  # type: ignore[operator]
    job_id = detach(state_dir, cluster, dest, "--max-bandwidth", "2MB", "-S", "10GB")
    with dest.store() as store:
        wait_for(
            lambda: any(p.key.endswith("/data.tar") for p in store.list_pending_uploads("")),
            timeout=120,
            what="PGDATA's upload to start",
        )
    started = time.monotonic()
    result = pgvault(state_dir, "jobs", "cancel", str(job_id), "--wait", "--timeout", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 10
    job = show(state_dir, job_id)
    assert job["state"] == "cancelled" and job["error"] == "cancelled by the operator"
    with dest.store() as store:
        assert store.list_pending_uploads("") == []
        backups = Catalog(store, SERVER).backups()
        assert [b.status for b in backups] == [FAILED]
        assert DONE not in {b.status for b in backups}
    wait_for(lambda: backup_sessions(cluster) == 0, timeout=10, what="the session to end")
    log = pgvault(state_dir, "jobs", "log", str(job_id), check=True).stdout
    assert "cancel requested" in log and "cancelled: cancelled by the operator" in log
    # One word for it: the job's log says cancelled, as the job's state does.
    assert " cancelled during " in log and "failed" not in log.replace("FAILED", ""), log


def _stored(store_dest: TestDestination, backup_id: str) -> int:
    with store_dest.store() as store:
        prefix = f"{SERVER}/base/{backup_id}/"
        return sum(o.size for o in store.list_objects(prefix) if ".tar" in o.key)


def kill_mid_way(state_dir: Path, cluster: Cluster, dest: TestDestination) -> tuple[int, str]:
    """A detached backup in 4 MB parts, SIGKILLed once 8 parts are stored, then judged dead
    by the job engine; returns its job id and backup ID."""
    job_id = detach(state_dir, cluster, dest, "--max-bandwidth", "3MB", "-S", "4MB")
    with dest.store() as store:
        wait_for(
            lambda: [o for o in store.list_objects("") if "/pgvault-checkpoint/" in o.key][7:],
            timeout=120,
            interval=0.2,
            what="eight stored parts",
        )
    job = show(state_dir, job_id)
    assert job["state"] == "running"
    os.kill(job["pid"], signal.SIGKILL)
    failed = wait_for(
        lambda: (j := show(state_dir, job_id))["state"] == "failed" and j,
        timeout=DEAD_AFTER + 15,
        interval=0.5,
        what="the killed job to be marked failed",
    )
    assert "process died" in failed["error"] and str(job["pid"]) in failed["error"]
    return job_id, failed["result"]["backup_id"]


def resume(state_dir: Path, dest: TestDestination, job_id: int, backup_id: str) -> dict[str, Any]:
    """`jobs resume ID` in the foreground; the new job, checked to have finished the backup."""
    resumed = pgvault(state_dir, "jobs", "resume", str(job_id), env=dest.env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    new: dict[str, Any] = json.loads(
        pgvault(state_dir, "jobs", "list", "--format", "json", check=True).stdout
    )[0]
    assert new["resumed_from"] == job_id and new["state"] == "succeeded"
    assert new["result"]["backup_id"] == backup_id  # the same backup, completed
    assert resumed.stdout.startswith(f"job {new['id']} succeeded after")
    with dest.store() as store:
        info = Catalog(store, SERVER).resolve("latest")
        assert info.backup_id == backup_id and info.status == DONE
        assert store.list_pending_uploads("") == []
        assert not [o for o in store.list_objects("") if "/pgvault-checkpoint/" in o.key]
    return new


def test_a_killed_backup_is_marked_failed_and_resumed_uploading_less(
    source: tuple[Cluster, str, dict[str, Any]], state_dir: Path, make_dest: object
) -> None:
    cluster, archive, tables = source
    full_dest: TestDestination = make_dest("s3")  # type: ignore[operator]
    full = pgvault(state_dir, *backup_args(cluster, full_dest, "-S", "4MB"), env=full_dest.env)
    assert full.returncode == 0, full.stderr
    full_bytes = _stored(full_dest, full.stdout.strip())

    dest: TestDestination = make_dest("s3")  # type: ignore[operator]
    job_id, backup_id = kill_mid_way(state_dir, cluster, dest)
    new = resume(state_dir, dest, job_id, backup_id)
    reused = new["result"]["reused_stored_bytes"]
    uploaded = _stored(dest, backup_id) - reused
    print(
        f"\nresume figure: a full backup stores {full_bytes} bytes; the resumed run uploaded "
        f"{uploaded} bytes ({uploaded / full_bytes:.0%} of a full backup) and kept {reused}"
    )
    log = pgvault(state_dir, "jobs", "log", str(new["id"]), check=True).stdout
    assert uploaded < 0.5 * full_bytes, log
    restore_and_compare(cluster, archive, tables, dest, backup_id)


def test_jobs_resume_right_after_a_kill_continues_the_backup(
    source: tuple[Cluster, str, dict[str, Any]], state_dir: Path, make_dest: object
) -> None:
    """No wait for the heartbeat grace: a process of this host that is gone is judged at once
    (it said "already running" and exited 0 doing nothing)."""
    cluster, archive, tables = source
    dest: TestDestination = make_dest("s3")  # type: ignore[operator]
    job_id = detach(state_dir, cluster, dest, "--max-bandwidth", "3MB", "-S", "4MB")
    job = wait_for(
        lambda: (j := show(state_dir, job_id))["bytes_done"] > 0 and j,
        timeout=120,
        what="the backup copying",
    )
    os.kill(job["pid"], signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{job['pid']}"), what="the worker gone")
    resumed = pgvault(state_dir, "jobs", "resume", str(job_id), env=dest.env, timeout=300)
    assert resumed.returncode == 0 and "already" not in resumed.stdout, resumed
    killed = show(state_dir, job_id)
    assert killed["state"] == "failed" and "process died" in killed["error"], killed
    new: dict[str, Any] = json.loads(
        pgvault(state_dir, "jobs", "list", "--format", "json", check=True).stdout
    )[0]
    assert new["resumed_from"] == job_id and new["state"] == "succeeded", new
    restore_and_compare(cluster, archive, tables, dest, new["result"]["backup_id"])


def test_backups_of_two_servers_run_at_once(
    source: tuple[Cluster, str, dict[str, Any]], state_dir: Path, make_dest: object
) -> None:
    cluster, _, _ = source
    ids = {}
    for server in ("pg-a", "pg-b"):
        dest: TestDestination = make_dest("file")  # type: ignore[operator]
        ids[server] = detach(state_dir, cluster, dest, "--max-bandwidth", "8MB", server=server)

    def both_copying() -> bool:
        jobs = json.loads(pgvault(state_dir, "jobs", "list", "--format", "json").stdout)
        return sum(j["state"] == "running" and j["bytes_done"] > 0 for j in jobs) == 2

    wait_for(both_copying, timeout=120, interval=0.3, what="two backups copying at once")
    for server, job_id in ids.items():
        done = wait_end(state_dir, job_id)
        assert done["state"] == "succeeded" and done["server"] == server, done
    listed = json.loads(
        pgvault(state_dir, "jobs", "list", "--server", "pg-b", "--format", "json").stdout
    )
    assert [j["id"] for j in listed] == [ids["pg-b"]]


def test_a_foreground_backup_is_a_job_with_a_bar_only_on_a_terminal(
    source: tuple[Cluster, str, dict[str, Any]], state_dir: Path, make_dest: object
) -> None:
    cluster, _, _ = source
    dest: TestDestination = make_dest("file")  # type: ignore[operator]
    plain = pgvault(state_dir, *backup_args(cluster, dest, "--max-bandwidth", "20MB"))
    assert plain.returncode == 0 and plain.stderr == ""  # not a terminal: nothing extra
    (first,) = json.loads(pgvault(state_dir, "jobs", "list", "--format", "json").stdout)
    assert first["kind"] == "backup" and first["state"] == "succeeded"
    assert not first["detached"] and first["result"]["backup_id"] == plain.stdout.strip()

    master, slave = pty.openpty()
    command = [PGVAULT, "--state-dir", str(state_dir), "--batch"]
    command += backup_args(cluster, dest, "--max-bandwidth", "20MB")
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=slave, env={**os.environ, **dest.env}
    )
    os.close(slave)
    out, _ = proc.communicate(timeout=300)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    assert proc.returncode == 0
    second = json.loads(pgvault(state_dir, "jobs", "list", "--format", "json").stdout)[0]
    assert out.decode().strip() == second["result"]["backup_id"]  # stdout: the ID alone
    text = screen.decode()
    assert f"\r\x1b[Kjob {second['id']} [" in text and "MiB/s" in text
    assert "copying files" in text


def test_a_resumed_backup_sends_again_the_parts_whose_files_changed(
    source: tuple[Cluster, str, dict[str, Any]], state_dir: Path, make_dest: object
) -> None:
    """Last in the module: it changes the cluster's data."""
    cluster, archive, _ = source
    dest: TestDestination = make_dest("s3")  # type: ignore[operator]
    job_id, backup_id = kill_mid_way(state_dir, cluster, dest)
    # A file the failed run stored changes: its part must be sent again. Tablespace sets
    # are stored before PGDATA, so ts1's first part is among the eight stored.
    cluster.sql("update blobs set payload = decode(repeat('ab', 3000), 'hex') where id = 7")
    cluster.sql("checkpoint")
    changed = checksums(cluster)
    new = resume(state_dir, dest, job_id, backup_id)
    log = pgvault(state_dir, "jobs", "log", str(new["id"]), check=True).stdout
    resent = [line.split()[3] for line in log.splitlines() if "changed since" in line]
    ts1 = str(cluster.one("select oid from pg_tablespace where spcname = 'ts1'"))
    assert resent and resent[0] == f"{ts1}.tar:", log
    assert 0 < new["result"]["reused_stored_bytes"] < _stored(dest, backup_id)
    restore_and_compare(cluster, archive, changed, dest, backup_id)


def test_bad_input_is_refused_before_any_job_is_recorded(tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tui.cli",
            "--state-dir",
            str(state),
            "--batch",
            "backup",
            "-n",
            "latest",
            f"file://{tmp_path}/dest",
            "pg1",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 3
    assert "reserved word" in result.stderr
    listing = subprocess.run(
        [
            sys.executable,
            "-m",
            "tui.cli",
            "--state-dir",
            str(state),
            "--batch",
            "jobs",
            "list",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(listing.stdout) == []
