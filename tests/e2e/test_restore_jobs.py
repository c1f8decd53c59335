"""Restores as jobs, end to end: a detached restore paused, resumed, and started.

A proxy in front of moto slows the answers down to a link an operator can watch; every
command is the real `pgvault` executable in its own process; the restore is proven by
pg_verifybackup and by PostgreSQL started on it holding every table of the source.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.jobs.store import JobStore
from tests.support.destinations import make_destination
from tests.support.emulators import Emulator
from tests.support.fault_proxy import FaultProxy, Script, through_proxy
from tests.support.jobs import pgvault, show, wait_for
from tests.support.pitr import SERVER, Source, make_source, new_target, restored_server, wait_log
from tests.support.postgres import wait_for_recovery_end

MiB = 1024 * 1024
IMMEDIATE = ("--target-immediate", "--target-action", "promote")
LINK = 2 * MiB  # bytes/s of each answer from the proxy


@pytest.fixture
def source(pgvault_bin: str, emulators: dict[str, Emulator]) -> Iterator[Source]:
    dest = make_destination("s3", emulators)
    made = make_source(dest, pgvault_bin, scale=1)
    for n in range(5):  # about 9 MB each: a restore of some 60 MB
        made.cluster.sql(
            f"create table filler{n} as select g as id, repeat(md5(g::text), 30) as pad "
            "from generate_series(1, 9000) g"
        )
    try:
        yield made
    finally:
        made.cluster.drop()
        dest.drop()


def _on_disk(root: str) -> int:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
    return total


def _archive_bytes(source: Source, backup: str) -> int:
    """The stored size of the backup's tar parts: what its restore downloads."""
    with source.dest.store() as store:
        prefix = f"{SERVER}/base/{backup}/"
        return sum(o.size for o in store.list_objects(prefix) if ".tar" in o.key)


def _last_change(samples: list[tuple[float, int]], since: float) -> float:
    """Seconds after `since` of the last sample that differs from the one before it."""
    changed = [t for (t, n), (_, prev) in zip(samples[1:], samples, strict=False) if n != prev]
    return max(changed, default=since) - since


def test_a_paused_detached_restore_writes_and_reads_nothing_then_resumes_and_starts(
    source: Source, emulators: dict[str, Emulator], tmp_path: Path
) -> None:
    source.cluster.sql("vacuum freeze")
    backup = source.backup()  # plain tar parts
    source.archive_everything()
    expected = source.cluster.table_checksums()
    total = _archive_bytes(source, backup)
    state_dir = tmp_path / "state"
    target = new_target()
    job_id = 0
    try:
        with FaultProxy(emulators["s3"].port, Script([]), rate=LINK) as proxy:
            via = through_proxy(source.dest, emulators, proxy)
            started = pgvault(
                state_dir,
                "restore",
                "--detach",
                "-J",
                "1",
                *IMMEDIATE,
                *via.cli_args,
                via.url,
                SERVER,
                backup,
                target.data,
                env=via.env,
            )
            assert started.returncode == 0, started.stderr
            job_id = int(started.stdout.strip())
            wait_for(
                lambda: _on_disk(target.data) >= 0.25 * total,
                timeout=120,
                interval=0.1,
                what="a quarter of the backup written",
            )
            paused = pgvault(state_dir, "jobs", "pause", str(job_id), "--wait", "--timeout", "5")
            assert paused.returncode == 0, paused.stdout + paused.stderr
            acknowledged, wall = time.monotonic(), time.time()
            disk: list[tuple[float, int]] = []
            while time.monotonic() - acknowledged < 4.5:
                disk.append((time.monotonic(), _on_disk(target.data)))
                time.sleep(0.05)
            # The chunk being written lands at once; nothing after. (Before: the 8 MiB
            # ranges already read, and the next one downloading, went on for seconds.)
            assert _last_change(disk, acknowledged) < 1.0, disk
            job = show(state_dir, job_id)
            assert job["state"] == "paused" and job["bytes_done"] < total, job
            # Nothing is read from the store either: the job's wire samples (the bytes its
            # downloads read off their sockets) drop to zero within a second. The proxy
            # goes on for a while filling the kernel's socket buffers, which no one reads.
            samples = JobStore(state_dir / "jobs.db").samples(job_id, since=wall + 1.0)
            assert len(samples) >= 2 and all(s.rate == 0 for s in samples), samples

            resumed = pgvault(state_dir, "jobs", "resume", str(job_id))
            assert resumed.returncode == 0, resumed.stderr
            done = wait_for(
                lambda: (j := show(state_dir, job_id))["state"] not in ("running", "paused") and j,
                timeout=180,
                interval=0.5,
                what="the restore to end",
            )
            assert done["state"] == "succeeded", done
            verified = subprocess.run(
                [f"{source.cluster.bindir}/pg_verifybackup", "-n", target.data],
                capture_output=True,
                text=True,
            )
            assert verified.returncode == 0, verified.stderr + verified.stdout
            with restored_server(target, source.cluster.bindir, env=via.env) as server:
                wait_for_recovery_end(server)
                wait_log(server, "recovery stopping after reaching consistency")
                assert server.table_checksums() == expected
            log = pgvault(state_dir, "jobs", "log", str(job_id), check=True).stdout
            assert "paused by the operator" in log and "resumed by the operator" in log
    finally:
        if job_id:  # a failed assertion must not leave the paused job's process behind
            pgvault(state_dir, "jobs", "cancel", str(job_id), "--wait", "--timeout", "30")
        target.drop()


def test_a_paused_detached_verify_reads_nothing_then_resumes_and_passes(
    source: Source, emulators: dict[str, Emulator], tmp_path: Path
) -> None:
    backup = source.backup()
    state_dir = tmp_path / "state"
    job_id = 0
    try:
        # Verify reads 4 MiB at a time (2 s on this link): before, a pause let the reads
        # under way go on. Now a read passes the job's checkpoint every 256 KiB.
        with FaultProxy(emulators["s3"].port, Script([]), rate=2 * MiB) as proxy:
            via = through_proxy(source.dest, emulators, proxy)
            started = pgvault(
                state_dir, "verify", "--detach", *via.cli_args, via.url, SERVER, backup
            )
            assert started.returncode == 0, started.stderr
            job_id = int(started.stdout.strip())
            wait_for(
                lambda: show(state_dir, job_id)["bytes_done"] >= 2 * MiB,
                timeout=120,
                interval=0.2,
                what="verify to read",
            )
            paused = pgvault(state_dir, "jobs", "pause", str(job_id), "--wait", "--timeout", "5")
            assert paused.returncode == 0, paused.stdout + paused.stderr
            at_pause = show(state_dir, job_id)
            time.sleep(1.2)  # the slices under way, and the next flush of the job's progress
            first = show(state_dir, job_id)
            time.sleep(3.5)
            second = show(state_dir, job_id)
            assert at_pause["state"] == first["state"] == second["state"] == "paused"
            assert first["bytes_done"] == second["bytes_done"], (first, second)
            # One 256 KiB slice per reader (-J 2) at most after the pause. (Before: the
            # 4 MiB reads under way went on, megabytes more.)
            assert second["bytes_done"] - at_pause["bytes_done"] <= 2 * 256 * 1024, (
                at_pause,
                second,
            )

            proxy._server.rate = None  # the rest at full speed (a test-only knob)
            resumed = pgvault(state_dir, "jobs", "resume", str(job_id))
            assert resumed.returncode == 0, resumed.stderr
            done = wait_for(
                lambda: (j := show(state_dir, job_id))["state"] not in ("running", "paused") and j,
                timeout=180,
                interval=0.5,
                what="verify to end",
            )
            assert done["state"] == "succeeded", done
            assert "verified" in done["result"]["summary"], done
    finally:
        if job_id:
            pgvault(state_dir, "jobs", "cancel", str(job_id), "--wait", "--timeout", "30")


def test_a_restore_under_max_bandwidth_downloads_at_the_cap_and_starts(
    source: Source, tmp_path: Path
) -> None:
    backup = source.backup()  # plain tar parts
    source.archive_everything()
    expected = source.cluster.table_checksums()
    total = _archive_bytes(source, backup)
    cap = 6 * MiB
    state_dir = tmp_path / "state"
    target = new_target()
    try:
        started = time.monotonic()
        restored = pgvault(
            state_dir,
            "restore",
            "--max-bandwidth",
            "6MiB",
            *IMMEDIATE,
            *source.dest.cli_args,
            source.dest.url,
            SERVER,
            backup,
            target.data,
            env=source.dest.env,
        )
        elapsed = time.monotonic() - started
        assert restored.returncode == 0, restored.stderr
        # A lower bound only: however loaded the machine, the cap is what keeps it slow.
        assert elapsed >= total / cap * 0.8, (elapsed, total)
        jobs = JobStore(state_dir / "jobs.db")
        (job,) = jobs.list_jobs()
        rates = [s.rate for s in jobs.samples(job.id)]
        # The margin covers the limiter's burst and a second counted late, as for backups.
        assert rates and max(rates) <= cap * 1.6, [round(r / MiB, 1) for r in rates]
        # restore_command is not capped: the WAL a standby replays is not held back.
        settings = Path(target.data, "postgresql.auto.conf").read_text()
        assert "max-bandwidth" not in settings
        with restored_server(target, source.cluster.bindir, env=source.dest.env) as server:
            wait_for_recovery_end(server)
            assert server.table_checksums() == expected
    finally:
        target.drop()
