"""The console's key-to-screen latency, idle and while a backup runs at full speed.

    .venv/bin/python bench/console.py [--rounds 25] [--idle-rounds 10] [--compression zstd]

The real `pgvault` console runs in tmux at 80x24 on a private job store. A throwaway
PostgreSQL (the demo's cluster and sample data, about 380 MiB) is backed up again and again
by detached `pgvault --batch backup` jobs without a bandwidth cap (with zstd by default, so
the backup takes all the CPU it can get on this machine), each finished backup removed so
the disk does not fill. The bench sends keys with `tmux send-keys` and reads the pane with
`tmux capture-pane` in a loop until the screen shows the key's effect:

    2 (catalog view)   1 (jobs view)   ? (help)   ? (closed)   enter (job detail)   esc (back)

A sample is the time from just before `send-keys` to the first capture showing the change,
so it includes both tmux round trips (2 ms each here: the resolution). A lone esc also
waits for the rest of a possible escape sequence (25 ms with the console's driver,
tui/driver.py; 100 to 200 ms with Textual's own), so esc is reported apart as well (p50/p95
of the other keys are given without it). Samples taken while
no backup job was running (between two backups) are not counted as busy ones.
Target: p95 under 100 ms and p99 under 200 ms while the backup runs. Two shared cores:
rerun when figures look odd.

Then the console's own cost, which the machine's other load does not change: the same keys
pressed in-process (Pilot, headless, on the fixed job rows and catalog the console tests
use), timing the UI thread's CPU (time.thread_time) from the key to the app being idle.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.jobs import JobFilter, JobState, JobStore
from core.jobs.model import ACTIVE_STATES

PGVAULT = str(Path(sys.executable).parent / "pgvault")
WIDTH, HEIGHT = 80, 24
SESSION = f"pgvault-bench-{os.getpid()}"
SERVER = "bench"
Check = Callable[[str], bool]

#: (key sent, what it does, the screen shows it when)
STEPS: tuple[tuple[str, str, Check], ...] = (
    ("2", "view switch", lambda s: "▼" in s and "PROGRESS" not in s),
    ("1", "view switch", lambda s: "PROGRESS" in s and "Help:" not in s),
    ("?", "open help", lambda s: "Help: Jobs" in s),
    ("?", "close help", lambda s: "Help:" not in s and "PROGRESS" in s),
    ("Enter", "open detail", lambda s: "esc Back" in s),
    ("Escape", "esc: detail", lambda s: "PROGRESS" in s and "esc Back" not in s),
)


def screen() -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", SESSION], capture_output=True, text=True, check=True
    ).stdout


def wait_for(check: Check, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = screen()
        if check(text):
            return text
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: the screen never showed the change:\n{text}")


def backup_running(state_dir: str) -> bool:
    with JobStore.open(state_dir) as store:
        jobs = store.list_jobs(JobFilter(states=(JobState.RUNNING,), kinds=("backup",)))
    return bool(jobs)


class BackupLoop:
    """Keeps one uncapped backup job running: starts the next when the last one ends."""

    def __init__(self, env: dict[str, str], args: list[str], destination: Path) -> None:
        self.env = env
        self.args = args
        self.destination = destination
        self.stop = threading.Event()
        self.finished: list[tuple[int, float]] = []  # (bytes, seconds) of each finished backup
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        state_dir = self.env["PGVAULT_STATE_DIR"]
        while not self.stop.is_set():
            started = subprocess.run(
                [PGVAULT, "--batch", "backup", "--detach", *self.args],
                env=self.env,
                capture_output=True,
                text=True,
            )
            if started.returncode != 0:
                raise SystemExit(f"bench: backup did not start: {started.stderr}")
            with JobStore.open(state_dir) as store:
                while not self.stop.is_set():
                    active = store.list_jobs(JobFilter(states=tuple(ACTIVE_STATES)))
                    if not active:
                        break
                    time.sleep(0.2)
                last = store.list_jobs(JobFilter(kinds=("backup",), limit=1))[0]
            if last.state is not JobState.SUCCEEDED:
                raise SystemExit(f"bench: backup job {last.id} {last.state.value}: {last.error}")
            if last.started and last.finished:
                self.finished.append((last.bytes_done, last.finished - last.started))
            # Keep the disk from filling: drop the finished backup's files.
            shutil.rmtree(self.destination / SERVER / "base", ignore_errors=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def report(label: str, samples: list[tuple[str, float]]) -> None:
    if not samples:
        print(f"{label}: no samples")
        return
    values = [ms for _, ms in samples]
    print(
        f"{label}: n={len(values)}  p50 {statistics.median(values):.0f} ms  "
        f"p95 {percentile(values, 0.95):.0f} ms  p99 {percentile(values, 0.99):.0f} ms  "
        f"max {max(values):.0f} ms"
    )
    for what in dict.fromkeys(w for w, _ in samples):
        mine = [ms for w, ms in samples if w == what]
        print(
            f"    {what:<13} n={len(mine):<3} p50 {statistics.median(mine):4.0f} ms  "
            f"max {max(mine):4.0f} ms"
        )


def rounds(count: int, state_dir: str | None) -> tuple[list[tuple[str, float]], int]:
    """Cycle through STEPS `count` times; (samples, samples dropped as not busy)."""
    samples: list[tuple[str, float]] = []
    dropped = 0
    for _ in range(count):
        for key, what, check in STEPS:
            busy_before = state_dir is None or backup_running(state_dir)
            t0 = time.perf_counter()
            subprocess.run(["tmux", "send-keys", "-t", SESSION, key], check=True)
            wait_for(check)
            ms = (time.perf_counter() - t0) * 1000
            busy_after = state_dir is None or backup_running(state_dir)
            if busy_before and busy_after:
                samples.append((what, ms))
            else:
                dropped += 1
            time.sleep(0.15)  # a person's pace, and the view's next refresh starts clean
    return samples, dropped


CPU_KEYS = (
    ("2", "view switch"),
    ("1", "view switch"),
    ("question_mark", "open help"),
    ("question_mark", "close help"),
    ("enter", "open detail"),
    ("escape", "esc: detail"),
)


def ui_thread_cpu(rounds: int) -> list[tuple[str, float]]:
    """(what, ms of UI-thread CPU) per key press, in-process on fixed rows."""
    import asyncio
    import tempfile

    from textual.pilot import Pilot

    from tests.support.console import fill_store, loaded, make_app, settle, write_catalog

    base = Path(tempfile.mkdtemp(prefix="pgvault-bench-cpu-"))
    os.environ["XDG_DATA_HOME"] = str(base / "data")
    fill_store(base / "state")
    write_catalog(base / "catalog")
    app = make_app(str(base / "state"), f"file://{base / 'catalog'}")
    samples: list[tuple[str, float]] = []

    async def drive() -> None:
        async with app.run_test(size=(WIDTH, HEIGHT)) as pilot:
            await settle(cast("Pilot[object]", pilot), loaded(app))
            for key in ("2", "1"):  # both views built once, as in a session
                await pilot.press(key)
                await pilot.pause(0.2)
            for _ in range(rounds):
                for key, what in CPU_KEYS:
                    start = time.thread_time()
                    await pilot.press(key)
                    await pilot.pause()
                    samples.append((what, (time.thread_time() - start) * 1000))
                    await pilot.pause(0.2)

    try:
        asyncio.run(drive())
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=25, help="cycles of the six keys, busy")
    parser.add_argument("--idle-rounds", type=int, default=10, help="cycles with nothing running")
    parser.add_argument("--compression", default="zstd", choices=["none", "lz4", "zstd", "gzip"])
    parser.add_argument("--cpu-rounds", type=int, default=10, help="cycles for the CPU part")
    parser.add_argument("--cpu-only", action="store_true", help="only the in-process CPU part")
    args = parser.parse_args()
    if args.cpu_only:
        report("UI-thread CPU per key (in-process)", ui_thread_cpu(args.cpu_rounds))
        return 0

    base = Path("/tmp") / f"pgvault-bench-console-{os.getpid()}"
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    env = {
        **os.environ,
        "PGVAULT_DEMO_DIR": str(base / "demo"),
        "XDG_DATA_HOME": str(base / "data"),
        "XDG_CONFIG_HOME": str(base / "config"),
        "PGVAULT_STATE_DIR": str(base / "state"),
        "TERM": "xterm-256color",
    }
    env.pop("NO_COLOR", None)
    os.environ.update({k: env[k] for k in ("PGVAULT_DEMO_DIR", "XDG_DATA_HOME")})
    destination = base / "backups"
    destination.mkdir()
    from core.demo import start_demo, stop_demo

    loop: BackupLoop | None = None
    try:
        print("bench: starting the demo cluster (sample data, no backup) ...", flush=True)
        demo = start_demo(env["PGVAULT_STATE_DIR"], backup=False).demo
        conn = demo.connection()
        backup_args = ["-h", conn["host"], "-p", conn["port"], "-U", conn["user"], "-J", "2"]
        backup_args.append("--no-wal-check")  # the demo archives WAL to its own destination
        if args.compression != "none":
            backup_args.append(f"--{args.compression}")
        backup_args += [f"file://{destination}", SERVER]

        command = " ".join(shlex.quote(p) for p in [PGVAULT, f"file://{destination}"])
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k.isidentifier())
        size = ["-x", str(WIDTH), "-y", str(HEIGHT)]
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", SESSION, *size, f"env {exports} {command}"],
            check=True,
        )
        wait_for(lambda s: "No jobs yet" in s, timeout=60)

        print(f"bench: {args.idle_rounds} idle rounds (no job) ...", flush=True)
        # Idle: the jobs view needs a row for `enter`: one quick backup first.
        first = subprocess.run(
            [PGVAULT, "--batch", "backup", *backup_args], env=env, capture_output=True, text=True
        )
        if first.returncode != 0:
            raise SystemExit(f"bench: backup failed: {first.stderr}")
        shutil.rmtree(destination / SERVER / "base", ignore_errors=True)
        wait_for(lambda s: "done" in s and "PROGRESS" in s)
        idle, _ = rounds(args.idle_rounds, None)

        print(f"bench: {args.rounds} rounds while backups run back to back ...", flush=True)
        loop = BackupLoop(env, backup_args, destination)
        loop.thread.start()
        wait_for(lambda s: "running" in s and "MiB/s" in s, timeout=60)
        busy, dropped = rounds(args.rounds, env["PGVAULT_STATE_DIR"])
        loop.stop.set()
        loop.thread.join(timeout=120)

        print()
        load = os.getloadavg()
        print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        if loop.finished:
            total = sum(b for b, _ in loop.finished)
            seconds = sum(s for _, s in loop.finished)
            print(
                f"backups during the busy rounds: {len(loop.finished)} finished, "
                f"{total / seconds / 2**20:.0f} MiB/s read on average ({args.compression})"
            )
        report("idle (no job running)", idle)
        report("idle, keys other than esc", [x for x in idle if not x[0].startswith("esc")])
        report("busy (a backup running at full speed)", busy)
        print(f"    ({dropped} samples dropped: taken between two backups)")
        report("busy, keys other than esc", [x for x in busy if not x[0].startswith("esc")])
        if idle and busy:
            ratio = statistics.median([m for _, m in busy]) / statistics.median(
                [m for _, m in idle]
            )
            print(f"busy/idle p50 ratio: {ratio:.2f}")
        report("UI-thread CPU per key (in-process)", ui_thread_cpu(args.cpu_rounds))
        return 0
    finally:
        if loop is not None:
            loop.stop.set()
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
        with JobStore.open(env["PGVAULT_STATE_DIR"]) as store:
            for job in store.list_jobs(JobFilter(states=tuple(ACTIVE_STATES))):
                store.request_cancel(job.id)
        print(f"bench: {stop_demo(env['PGVAULT_STATE_DIR'])}")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
