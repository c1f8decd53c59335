"""One archive_command call that finds its file stored (bench/wal.py --per-call), beside `cp`.

In a drain through `--async`, most calls find the pusher's marker already there: their
whole cost is the process. This times, in alternating rounds, `cp` of a 16 MiB segment,
`pgvault --batch wal-archive --async ... %p` and the fast entry `python -I -S tui/walack.py`
with the same arguments, each acknowledging a marker written just before (and checking the
marker was consumed, so a fallback to the slow path cannot pass unnoticed).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.wal.files import FileIdentity
from core.wal.spool import ArchiveSpool
from tests.support.wal import synthetic_segment
from tui.batch.wal_fast import spool_location

REPO = Path(__file__).resolve().parents[1]
NAME = "000000010000000000000003"


def per_call(rounds: int) -> dict[str, list[float]]:
    """Seconds of each call, `rounds` times each, alternating."""
    base = tempfile.mkdtemp(prefix="pgvault-bench-call-")
    try:
        wal_dir = os.path.join(base, "pg_wal")
        os.makedirs(os.path.join(wal_dir, "archive_status"))
        wal = os.path.join(wal_dir, NAME)
        Path(wal).write_bytes(synthetic_segment(NAME))
        args = ["--async", "--spool-dir", f"{base}/spool", f"file://{base}/dest", "pg1", wal]
        spool = ArchiveSpool(spool_location(args, wal_dir))
        spool.prepare()
        spool.touch_heartbeat()
        identity = FileIdentity.of(os.stat(wal))
        pgvault = str(Path(sys.executable).parent / "pgvault")
        walack = [sys.executable, "-I", "-S", str(REPO / "tui" / "walack.py")]
        commands = {
            "cp": ["cp", wal, os.path.join(base, "copy")],
            "pgvault --async": [pgvault, "--batch", "wal-archive", *args],
            "walack --async": [*walack, "--batch", "wal-archive", *args],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(rounds):
            for name, command in commands.items():
                if name != "cp":
                    spool.write_marker(NAME, identity, "k")
                started = time.perf_counter()
                subprocess.run(command, check=True)
                times[name].append(time.perf_counter() - started)
                if spool.read_marker(NAME) is not None:
                    raise RuntimeError(f"{name} did not acknowledge through the marker")
        return times
    finally:
        shutil.rmtree(base, ignore_errors=True)


def call_table(times: dict[str, list[float]]) -> str:
    floor = statistics.median(times["cp"])
    lines = ["| call | median (ms) | p90 (ms) | x cp |", "|---|---:|---:|---:|"]
    for name, values in times.items():
        median = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        lines.append(f"| {name} | {median * 1000:.1f} | {p90 * 1000:.1f} | {median / floor:.2f} |")
    return "\n".join(lines)
