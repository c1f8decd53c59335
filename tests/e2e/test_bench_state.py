"""The benches keep their job records to themselves (bench/state.py).

bench/memory.py at its smallest size (a backup to a local directory and to moto, a
restore) used to record its jobs in the operator's default state directory
(`$XDG_STATE_HOME/pgvault/jobs.db`); each bench now records them in a temporary state
directory of its own, removed when it ends. Every bench still starts (`--help`), and
bench/restore.py runs at its smallest size.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.jobs import wait_for

REPO = Path(__file__).resolve().parents[2]
BENCHES = sorted(
    p.name
    for p in (REPO / "bench").glob("*.py")
    if p.name not in ("state.py", "timed.py", "wal_call.py", "wal_drain.py")
)
SMALLEST_RESTORE = ("--scale", "1", "--blob-mb", "0", "--runs", "1", "--skip-s3")
SMALLEST_RESTORE += ("--compressions", "zstd")


def _environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PGVAULT_STATE_DIR"}
    return {**env, "HOME": str(home), "XDG_STATE_HOME": str(home / "state")}


def _bench(script: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """A bench run to its end, its raw figures (bench/results/, not committed) removed."""
    results = REPO / "bench" / "results"
    before = set(results.glob("*.json")) if results.exists() else set()
    try:
        return subprocess.run(
            [sys.executable, f"bench/{script}", *args],
            cwd=REPO,
            env=_environment(home),
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        for path in set(results.glob("*.json")) - before:
            path.unlink()


def test_a_bench_records_its_jobs_in_a_state_dir_of_its_own(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done = _bench("memory.py", "--scale", "1", "--blob-mb", "1", "--rounds", "1", home=home)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "backup, local dir" in done.stdout and "restore, local dir" in done.stdout
    assert not (home / "state" / "pgvault").exists()  # the operator's default state dir
    assert not (home / ".local").exists()


def test_the_restore_bench_runs_at_its_smallest_size(tmp_path: Path) -> None:
    """bench/restore.py failed at once: its cluster archives no WAL, and restore has since
    refused a backup whose WAL is missing ('cannot reach consistency'); it now passes
    --accept-wal-gap, as bench/memory.py does, and measures the restores again."""
    done = _bench("restore.py", *SMALLEST_RESTORE, home=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "pgvault restore (fsync)" in done.stdout
    assert not (tmp_path / "state").exists()


def test_a_bench_stopped_by_sigterm_removes_its_state_dir(tmp_path: Path) -> None:
    """SIGTERM ended a bench without its atexit handlers and finally blocks: its state
    directory (and the cluster it had made) stayed behind."""
    states = Path("/tmp")
    before = set(states.glob("pgvault-bench-state-*"))
    args = ["--scale", "1", "--blob-mb", "1", "--rounds", "3"]
    bench = subprocess.Popen(
        [sys.executable, "bench/memory.py", *args],
        cwd=REPO,
        env=_environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        made = wait_for(lambda: set(states.glob("pgvault-bench-state-*")) - before, timeout=60)
        time.sleep(2)  # inside the bench, a cluster being made or a backup running
        bench.send_signal(signal.SIGTERM)
        output, _ = bench.communicate(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
    assert bench.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert not [p for p in made if p.exists()]


@pytest.mark.parametrize("bench", BENCHES)
def test_every_bench_still_starts(bench: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, f"bench/{bench}", "--help"],
        cwd=REPO,
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "usage:" in done.stdout
    assert not (tmp_path / "state").exists()
