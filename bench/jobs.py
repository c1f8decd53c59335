"""The job engine's cost and reaction time, on a real backup and on a plain upload.

    .venv/bin/python bench/jobs.py [--scale 100] [--blob-mb 300] [--rounds 3] [--pauses 5]
                                   [--size-mb 1024] [--no-backup]

1. Backup throughput with progress recording vs without: `core.backup.run_backup` of a
   PostgreSQL 15 cluster (pgbench at --scale plus --blob-mb of random bytea) to a local
   directory, with a NullReporter, and as a job (`run_foreground` with the BACKUP kind:
   JobReporter = Tracker + a flusher thread writing progress, heartbeat, 1 s samples and
   log lines to the SQLite store twice a second, state polled five times a second).
   Without compression and with lz4; rounds alternate, medians compared (target >= 0.97).
2. The same for a plain upload of --size-mb through core.storage (no PostgreSQL).
3. Pause reaction on a backup (and an upload) at full speed: the time from the committed
   pause request to the last byte written to the destination (allocated blocks of the
   in-progress files, sampled every 2 ms), and to the `paused` acknowledgement.
4. The cost of one flush transaction.
Two cores are shared with other work: compare ratios, and rerun when figures look odd.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.state import use_own_state_dir
from core.backup import BackupRequest, run_backup
from core.backup.job import BACKUP
from core.jobs import JobKind, JobReporter, JobState, JobStore
from core.jobs.runner import execute, run_foreground, start_foreground
from core.postgres.connection import ConnectionParams
from core.progress import NullReporter, ProgressSnapshot, RateSample, Reporter, Tracker
from core.urls import parse_location
from tests.support.jobkinds import UPLOAD, UploadRequest, upload
from tests.support.jobs import bytes_on_disk, make_source
from tests.support.postgres import Cluster, as_postgres, make_cluster

MiB = 1024 * 1024


@dataclass
class Run:
    """One timed run: bytes moved, wall seconds, process CPU seconds, the engine's CPU."""

    size: int
    wall: float
    cpu: float
    engine_cpu: float = 0.0


def timed_bare(operation: Callable[[Reporter], int]) -> Run:
    wall, cpu = time.perf_counter(), time.process_time()
    size = operation(NullReporter())
    return Run(size, time.perf_counter() - wall, time.process_time() - cpu)


def timed_job(store: JobStore, kind: JobKind[Any], request: Any, size_key: str) -> Run:
    reporters: list[JobReporter] = []
    wall, cpu = time.perf_counter(), time.process_time()
    outcome = run_foreground(store, kind, request, on_start=lambda j, r: reporters.append(r))
    took, used = time.perf_counter() - wall, time.process_time() - cpu
    if outcome.job.state is not JobState.SUCCEEDED:
        raise SystemExit(f"job failed: {outcome.job.error}")
    result = outcome.job.result
    assert result is not None
    return Run(int(result.to_json()[size_key]), took, used, reporters[0].flusher_cpu)


class CountingReporter(NullReporter):
    """Counts the calls a pipeline makes into its reporter."""

    def __init__(self) -> None:
        self.calls = 0

    def advance(self, nbytes: int = 0, files: int = 0) -> None:
        self.calls += 1

    def checkpoint(self) -> None:
        self.calls += 1


def call_cost() -> float:
    """Seconds a JobReporter's advance() + checkpoint() cost beyond a NullReporter's."""
    n = 200_000
    null = NullReporter()
    tracker = Tracker()
    start = time.perf_counter()
    for _ in range(n):
        null.advance(65536)
        null.checkpoint()
    bare = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n):
        tracker.advance(65536)
        tracker.checkpoint()
    return max(0.0, (time.perf_counter() - start - bare) / n / 2)


def backup_runs(
    store: JobStore, cluster: Cluster, compression: str | None
) -> tuple[Callable[[Path], Run], Callable[[Path], Run]]:
    """A bare backup and a backup job of the cluster into a given directory."""

    def bare_backup(dest: Path) -> Run:
        request = backup_request(cluster, dest, compression)
        return timed_bare(lambda r: run_backup(request, r).bytes_read)

    def job_backup(dest: Path) -> Run:
        return timed_job(store, BACKUP, backup_request(cluster, dest, compression), "bytes_read")

    return bare_backup, job_backup


def compare(
    label: str,
    rounds: int,
    bare_run: Callable[[Path], Run],
    job_run: Callable[[Path], Run],
    calls: int,
    work: Path,
) -> None:
    runs: dict[str, list[Run]] = {"bare": [], "job": []}
    for i in range(rounds):
        for name in ("bare", "job") if i % 2 == 0 else ("job", "bare"):
            dest = work / f"{name}-{i}"
            run = bare_run(dest) if name == "bare" else job_run(dest)
            runs[name].append(run)
            print(f"  {label} round {i + 1} {name:4s} {run.size / MiB / run.wall:8.1f} MiB/s")
            shutil.rmtree(dest, ignore_errors=True)
    size = runs["bare"][0].size
    best = {k: size / MiB / min(r.wall for r in v) for k, v in runs.items()}
    median = {k: size / MiB / statistics.median(r.wall for r in v) for k, v in runs.items()}
    engine = statistics.median(r.engine_cpu for r in runs["job"])
    cpu = statistics.median(r.cpu for r in runs["bare"])
    per_call = call_cost()
    overhead = (engine + calls * per_call) / cpu
    print(
        f"  {label}: best bare {best['bare']:.0f} MiB/s, as a job {best['job']:.0f} MiB/s, "
        f"ratio {best['job'] / best['bare']:.3f}; medians ratio "
        f"{median['job'] / median['bare']:.3f} (target >= 0.97)"
    )
    print(
        f"  {label}: engine CPU per run {engine * 1000:.1f} ms flusher + {calls} reporter calls "
        f"x {per_call * 1e9:.0f} ns = {overhead:.2%} of the operation's "
        f"{cpu:.2f} s CPU (throughput ratio this implies: {1 / (1 + overhead):.3f})"
    )


def pause_reaction(
    work: Path,
    store: JobStore,
    kind: JobKind[Any],
    make_request: Callable[[Path], Any],
    trials: int,
    what: str,
) -> None:
    print(f"pause reaction: {trials} {what} at full speed, paused mid-way")
    stops: list[float] = []
    acks: list[float] = []
    control = JobStore(store.path)  # the operator's connection
    for i in range(trials):
        dest = work / f"pause-{i}"
        request = make_request(dest)
        job, reporter = start_foreground(store, kind, request)
        thread = threading.Thread(target=execute, args=(kind, request, reporter))
        thread.start()
        while not dest.exists() or bytes_on_disk(dest) < 64 * MiB:
            time.sleep(0.002)
        control.request_pause(job.id)
        requested = time.monotonic()
        last_change, last = requested, bytes_on_disk(dest)
        acked = None
        while time.monotonic() - requested < 2.5:
            now_bytes = bytes_on_disk(dest)
            now = time.monotonic()
            if now_bytes != last:
                last_change, last = now, now_bytes
            if acked is None and reporter.state is JobState.PAUSED:
                acked = now
            time.sleep(0.002)
        stops.append(last_change - requested)
        acks.append((acked or time.monotonic()) - requested)
        print(
            f"  trial {i + 1}: last byte {stops[-1] * 1000:6.0f} ms after the request, "
            f"acknowledged after {acks[-1] * 1000:6.0f} ms, {last / MiB:.0f} MiB written"
        )
        control.request_cancel(job.id)
        thread.join()
        shutil.rmtree(dest, ignore_errors=True)
    print(
        f"  median {statistics.median(stops) * 1000:.0f} ms, max {max(stops) * 1000:.0f} ms "
        f"to the last byte (promise: < 1000 ms); acknowledged median "
        f"{statistics.median(acks) * 1000:.0f} ms"
    )


def make_source_cluster(scale: int, blob_mb: int) -> Cluster:
    cluster = make_cluster(
        archive_command="/bin/true",
        settings={"shared_buffers": "128MB", "max_wal_size": "1GB"},
    )
    print(f"loading pgbench scale {scale} and {blob_mb} MB of random bytea ...", flush=True)
    as_postgres(
        [
            f"{cluster.bindir}/pgbench",
            "-i",
            "-q",
            "-s",
            str(scale),
            *cluster.conninfo_args(),
            "postgres",
        ],
        timeout=3600,
    )
    cluster.sql("create table blobs(id int primary key, payload bytea)")
    cluster.sql("alter table blobs alter payload set storage external")
    conn = cluster.connect()
    with conn.cursor() as cur:
        for i in range(blob_mb):
            cur.execute("insert into blobs values (%s, %s)", (i, os.urandom(1_000_000)))
    conn.close()
    cluster.sql("vacuum analyze")
    cluster.sql("checkpoint")
    return cluster


def backup_request(cluster: Cluster, dest: Path, compression: str | None) -> BackupRequest:
    return BackupRequest(
        location=parse_location(f"file://{dest}"),
        server="bench",
        connection=ConnectionParams(host=cluster.sock, port=str(cluster.port), user="postgres"),
        compression=compression,
        immediate_checkpoint=True,
        wal_check=False,  # archive_command is /bin/true: the bench keeps no WAL
    )


def flush_cost(store: JobStore, count: int = 2000) -> None:
    job = store.create("bench", state=JobState.RUNNING)
    now = time.time()
    start = time.perf_counter()
    for i in range(count):
        snap = ProgressSnapshot("copy", i, count, 0, None, 1.0, 1.0, now, now)
        store.flush(job.id, snap, [RateSample(now + i, 1.0)], [(now, logging.INFO, "line")])
    took = time.perf_counter() - start
    store.transition(job.id, JobState.SUCCEEDED)
    per = took / count * 1e6
    print(f"flush: {per:.0f} us per transaction; at two a second, {per * 2 / 1e4:.3f}% of one core")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--blob-mb", type=int, default=300)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pauses", type=int, default=5)
    parser.add_argument("--no-backup", action="store_true", help="only the upload figures")
    args = parser.parse_args()
    use_own_state_dir()  # its jobs never land in the operator's state
    logging.getLogger("pgvault").setLevel(logging.CRITICAL)  # cancelled trials log errors
    work = Path(tempfile.mkdtemp(prefix="pgvault-bench-jobs-", dir="/var/tmp"))
    cluster: Cluster | None = None
    try:
        store = JobStore(work / "state" / "jobs.db")
        print(f"{os.cpu_count()} cores; working in {work}")
        if not args.no_backup:
            cluster = make_source_cluster(args.scale, args.blob_mb)
            run_backup(backup_request(cluster, work / "warm", None))  # page cache, imports
            shutil.rmtree(work / "warm")
            print(f"backup throughput, {args.rounds} rounds each, to a local directory")
            for compression in (None, "lz4"):
                counting = CountingReporter()
                run_backup(backup_request(cluster, work / "count", compression), counting)
                shutil.rmtree(work / "count")
                bare_backup, job_backup = backup_runs(store, cluster, compression)
                compare(
                    f"backup {compression or 'none'}",
                    args.rounds,
                    bare_backup,
                    job_backup,
                    counting.calls,
                    work,
                )
            running = cluster
            pause_reaction(
                work,
                store,
                BACKUP,
                lambda dest: backup_request(running, dest, None),
                args.pauses,
                "backups",
            )
        size = args.size_mb * MiB
        source = make_source(work / "source", size)
        counting = CountingReporter()
        upload(UploadRequest(source, f"file://{work}/warm", "object"), counting)
        shutil.rmtree(work / "warm")
        print(f"upload throughput: {size // MiB} MiB to a local directory, {args.rounds} rounds")

        def bare_upload(dest: Path) -> Run:
            request = UploadRequest(source, f"file://{dest}", "object", jobs=2)
            return timed_bare(lambda r: int(upload(request, r)["size"]))

        def job_upload(dest: Path) -> Run:
            request = UploadRequest(source, f"file://{dest}", "object", jobs=2)
            return timed_job(store, UPLOAD, request, "size")

        compare("upload", args.rounds, bare_upload, job_upload, counting.calls, work)
        pause_reaction(
            work,
            store,
            UPLOAD,
            lambda dest: UploadRequest(source, f"file://{dest}", "object", jobs=2),
            args.pauses,
            "uploads",
        )
        flush_cost(store)
    finally:
        if cluster is not None:
            cluster.drop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
