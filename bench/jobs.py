"""The job engine's cost and reaction time.

    .venv/bin/python bench/jobs.py [--size-mb 1024] [--rounds 3] [--pauses 5]

1. Throughput of the same real operation with progress recording vs without: an upload of
   --size-mb through core.storage to a local directory, run bare with a NullReporter
   (store.gate is still set, as a pipeline always sets it) and as a job (JobReporter:
   Tracker + a flusher thread writing to the SQLite store twice a second, state polled five
   times a second). Rounds alternate; the median of each is compared (target >= 0.97).
2. Pause reaction: a job uploading at full speed is paused through the store from another
   connection; the time from the committed request to the last byte written to the
   destination (allocated blocks of the in-progress file, sampled every 2 ms), and to the
   `paused` acknowledgement.
3. The cost of one flush transaction (progress + heartbeat + a sample + a log line).
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.jobs import JobState, JobStore
from core.jobs.runner import execute, run_foreground, start_foreground
from core.progress import NullReporter, ProgressSnapshot, RateSample
from tests.support.jobkinds import UPLOAD, UploadRequest, upload
from tests.support.jobs import bytes_on_disk, make_source

MiB = 1024 * 1024


def bare(request: UploadRequest) -> float:
    start = time.perf_counter()
    upload(request, NullReporter())
    return time.perf_counter() - start


def as_job(store: JobStore, request: UploadRequest) -> float:
    start = time.perf_counter()
    outcome = run_foreground(store, UPLOAD, request)
    took = time.perf_counter() - start
    if outcome.job.state is not JobState.SUCCEEDED:
        raise SystemExit(f"job failed: {outcome.job.error}")
    return took


def throughput(work: Path, store: JobStore, source: str, size: int, rounds: int) -> None:
    print(f"throughput: {size // MiB} MiB upload to a local directory, {rounds} rounds each")
    times: dict[str, list[float]] = {"bare": [], "job": []}
    for i in range(rounds):
        for name in ("bare", "job") if i % 2 == 0 else ("job", "bare"):
            dest = work / f"dest-{name}-{i}"
            request = UploadRequest(source, f"file://{dest}", "object", jobs=2)
            took = bare(request) if name == "bare" else as_job(store, request)
            times[name].append(took)
            print(f"  round {i + 1} {name:4s} {size / MiB / took:8.1f} MiB/s")
            shutil.rmtree(dest)
    rate = {k: size / MiB / statistics.median(v) for k, v in times.items()}
    print(
        f"  median: bare {rate['bare']:.1f} MiB/s, as a job {rate['job']:.1f} MiB/s, "
        f"ratio job/bare {rate['job'] / rate['bare']:.3f} (target >= 0.97)"
    )


def pause_reaction(work: Path, store: JobStore, source: str, trials: int) -> None:
    print(f"pause reaction: {trials} uploads at full speed, paused mid-way")
    stops: list[float] = []
    acks: list[float] = []
    control = JobStore(store.path)  # the operator's connection
    for i in range(trials):
        dest = work / f"pause-{i}"
        request = UploadRequest(source, f"file://{dest}", "object", jobs=2)
        job, reporter = start_foreground(store, UPLOAD, request)
        thread = threading.Thread(target=execute, args=(UPLOAD, request, reporter))
        thread.start()
        while bytes_on_disk(dest) < 64 * MiB if dest.exists() else True:
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
    print(
        f"flush: {per:.0f} us per transaction; at two a second, "
        f"{per * 2 / 1e4:.3f}% of one core"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pauses", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pgvault-bench-jobs-", dir="/var/tmp"))
    try:
        size = args.size_mb * MiB
        source = make_source(work / "source", size)
        store = JobStore(work / "state" / "jobs.db")
        print(f"{os.cpu_count()} cores; source {size // MiB} MiB of random bytes in {work}")
        bare(UploadRequest(source, f"file://{work}/warm", "object"))  # page cache, imports
        shutil.rmtree(work / "warm")
        throughput(work, store, source, size, args.rounds)
        pause_reaction(work, store, source, args.pauses)
        flush_cost(store)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
