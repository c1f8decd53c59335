"""The 65-segment drain of bench/wal.py --drain: archivers side by side, with `cp` as the floor.

A backlog of --segments ready WAL segments is built with archiving paused, then
archive_command is set and the clock runs until pg_stat_archiver counts them all archived
(nothing else writes meanwhile). Each round runs every archiver once, in turn, so that the
shared machine's load falls on all of them alike; the table gives each one's range over the
rounds and the ratios of medians to `cp` and to barman-cloud-wal-archive.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.destinations import TestDestination, make_destination
from tests.support.emulators import Emulator
from tests.support.postgres import Cluster, world_dir
from tests.support.wal import barman_args, barman_tool, stop_pushers

REPO = Path(__file__).resolve().parents[1]
PGVAULT = str(Path(sys.executable).parent / "pgvault")
#: archive_command's fast entry, as the README recommends it (stdlib only, no site)
WALACK = f"{sys.executable} -I -S {REPO / 'tui' / 'walack.py'}"


@dataclass
class Drain:
    """One archiver's command (a function of the run's fresh directories) and its times."""

    name: str
    command: Callable[[], str]
    seconds: list[float] = field(default_factory=list)


def compile_sources(*roots: Path) -> None:
    """Write the .pyc files first: with PYTHONDONTWRITEBYTECODE set in the environment, every
    archive_command call would otherwise compile pgvault from source (installed packages,
    barman-cloud's and boto3's, come compiled)."""
    for root in roots:
        for package in ("core", "tui"):
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", str(root / package)],
                check=True,
                stdout=subprocess.DEVNULL,
            )


def drains(
    emulators: dict[str, Emulator], spool: str, before: Path | None, scratch: list[str]
) -> list[Drain]:
    """cp, barman-cloud, pgvault per segment and --async (and the `before` tree's)."""
    s3 = make_destination("s3", emulators)

    def fresh_dir() -> str:
        path = world_dir("pgvault-bench-drain-")
        os.chmod(path, 0o777)
        scratch.append(path)
        return path

    def fresh_file() -> TestDestination:
        dest = make_destination("file", emulators)
        scratch.append(dest.bucket)
        return dest

    def fresh_s3() -> TestDestination:
        return make_destination("s3", emulators, prefix=f"d{time.monotonic_ns()}")

    def pgvault(dest: TestDestination, *flags: str, exe: str = PGVAULT) -> str:
        argv = [exe, "--batch", "wal-archive", *dest.cli_args, *flags, dest.url, "pg1", "%p"]
        return " ".join(argv)

    fast = ["--async", "--spool-dir", spool, "-J", "4"]
    barman = barman_tool("barman-cloud-wal-archive")
    chosen = [
        Drain("cp (local dir)", lambda: f"cp %p {fresh_dir()}/%f"),
        # The raw limit of a durable copy: the segment fsynced (coreutils sync FILE), as
        # pgvault's local store does before it acknowledges.
        Drain("cp + sync (local dir)", lambda: f"D={fresh_dir()} && cp %p $D/%f && sync $D/%f"),
        Drain(
            "barman-cloud-wal-archive",
            lambda: " ".join(
                [barman, *barman_args("s3", s3.cli_args), fresh_s3().url, "pg1", "%p"]
            ),
        ),
        Drain("pgvault wal-archive", lambda: pgvault(fresh_s3())),
        Drain("pgvault --async", lambda: pgvault(fresh_s3(), *fast)),
        Drain("pgvault --async --zstd", lambda: pgvault(fresh_s3(), *fast, "--zstd")),
        Drain("pgvault --async (local dir)", lambda: pgvault(fresh_file(), *fast)),
        Drain("walack --async", lambda: pgvault(fresh_s3(), *fast, exe=WALACK)),
        Drain("walack --async --zstd", lambda: pgvault(fresh_s3(), *fast, "--zstd", exe=WALACK)),
        Drain("walack --async (local dir)", lambda: pgvault(fresh_file(), *fast, exe=WALACK)),
    ]
    if before is not None:
        # An earlier pgvault's executable (its pusher runs that version too).
        old = str(before)
        chosen += [
            Drain("pgvault wal-archive (before)", lambda: pgvault(fresh_s3(), exe=old)),
            Drain("pgvault --async (before)", lambda: pgvault(fresh_s3(), *fast, exe=old)),
            Drain(
                "pgvault --async --zstd (before)",
                lambda: pgvault(fresh_s3(), *fast, "--zstd", exe=old),
            ),
        ]
    return chosen


def drain_once(
    cluster: Cluster,
    command: str,
    segments: int,
    set_command: Callable[[Cluster, str], None],
) -> float:
    """Seconds until `segments` more files are archived under `command` (then paused)."""
    archived0 = cluster.one("select archived_count from pg_stat_archiver")
    watch = cluster.connect()
    try:
        with watch.cursor() as cur:
            set_command(cluster, command)
            started = time.monotonic()
            while True:
                cur.execute("select archived_count from pg_stat_archiver")
                if cur.fetchone()[0] - archived0 >= segments:
                    return time.monotonic() - started
                if time.monotonic() - started > 1800:
                    raise TimeoutError(f"{command}: the drain did not finish")
                time.sleep(0.02)
    finally:
        watch.close()
        set_command(cluster, "")


def run_drains(
    cluster: Cluster,
    chosen: list[Drain],
    segments: int,
    rounds: int,
    build_backlog: Callable[[Cluster, int], None],
    set_command: Callable[[Cluster, str], None],
    spool: str,
) -> None:
    for round_ in range(rounds):
        for drain in chosen:
            build_backlog(cluster, segments)
            seconds = drain_once(cluster, drain.command(), segments, set_command)
            stop_pushers(spool)
            drain.seconds.append(seconds)
            print(
                f"round {round_ + 1}: {drain.name:34} {seconds:6.2f}s  "
                f"(load {os.getloadavg()[0]:.1f})",
                flush=True,
            )


def drain_table(chosen: list[Drain]) -> str:
    """Each archiver's runs, median and ratios (cp and barman-cloud must be among them)."""
    medians = {d.name: statistics.median(d.seconds) for d in chosen}
    floor = medians["cp (local dir)"]
    barman = medians["barman-cloud-wal-archive"]
    lines = [
        "| archiver | runs (s) | median (s) | x cp | x barman-cloud |",
        "|---|---|---:|---:|---:|",
    ]
    for d in chosen:
        runs = ", ".join(f"{s:.1f}" for s in d.seconds)
        median = medians[d.name]
        lines.append(
            f"| {d.name} | {runs} | {median:.1f} | {median / floor:.2f} | {median / barman:.2f} |"
        )
    return "\n".join(lines)


def cleanup(scratch: list[str]) -> None:
    for path in scratch:
        shutil.rmtree(path, ignore_errors=True)
