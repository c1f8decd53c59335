"""Full-backup throughput: pgvault against `tar | zstd` and barman-cloud-backup, same run.

    .venv/bin/python bench/backup.py [--scale 100] [--blob-mb 300] [--runs 2] [--reuse]

Builds (or with --reuse, restarts) a PostgreSQL 15 cluster holding pgbench at --scale plus
--blob-mb of incompressible bytea, then times on the same data in the same run:
  - the raw pipeline `tar -cf - PGDATA | zstd -3 -T2 >/dev/null` (the reference);
  - `pgvault --batch backup` with none, lz4, zstd and gzip to a local directory and to the
    S3 emulator (moto on 127.0.0.1);
  - barman-cloud-backup (PGVAULT_BARMAN_BIN) with none, lz4 and gzip to the same emulator
    (barman-cloud 3.19 has no zstd for base backups).
Each time is the best of --runs runs (the machine's cores are shared with other work).
Every pgvault run is paired with the run it is compared with, taken just before it, and a
ratio is the median over the pairs, so both sides of a ratio saw the same load. MB/s is the
data directory's bytes over wall time; "read" is what the tool itself read (pgvault skips
pg_wal's contents). Peak RSS is the largest resident set of the backup process or any of
its children. The page cache is warm for every run (one untimed read first).
Results print as a markdown table and are saved under bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.state import use_own_state_dir  # noqa: E402
from tests.support.destinations import TestDestination, make_destination  # noqa: E402
from tests.support.emulators import start_moto  # noqa: E402
from tests.support.postgres import (  # noqa: E402
    Cluster,
    as_postgres,
    debian_bindir,
    make_cluster,
    world_dir,
)
from tests.support.restore import barman_bin  # noqa: E402

MB = 1_000_000
KEEP = Path("/tmp/pgvault-bench")
PGVAULT = str(Path(sys.executable).parent / "pgvault")


@dataclass
class Run:
    seconds: float
    rss: float
    read: float | None
    stored: float


@dataclass
class Figure:
    tool: str
    destination: str
    compression: str
    seconds: float
    mb_per_s: float
    peak_rss_mb: float | None
    stored_mb: float | None = None
    ratio_to_raw: float | None = None
    ratio_to_barman: float | None = None
    read_mb: float | None = None  # what the tool itself read (pgvault skips pg_wal)


def tree_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run cmd in a fresh wrapper process; (seconds, peak RSS MB of cmd's process tree, stderr)."""
    wrapper = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.monotonic()\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "dt = time.monotonic() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps({'rc': r.returncode, 'dt': dt, 'rss': rss, 'out': r.stdout,"
        " 'err': r.stderr[-3000:]}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    data = json.loads(result.stdout)
    if data["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({data['rc']}):\n{data['err']}")
    return data["dt"], data["rss"] / 1024, data["err"]


def build_cluster(scale: int, blob_mb: int, reuse: bool) -> tuple[Cluster, str]:
    bindir = debian_bindir(15)
    marker = KEEP / "ready.json"
    if reuse and marker.exists():
        state = json.loads(marker.read_text())
        cluster = Cluster(**state["cluster"])
        if not cluster.is_running():
            cluster.start()
        return cluster, state["archive"]
    if KEEP.exists():
        stop = Cluster(**json.loads(marker.read_text())["cluster"]) if marker.exists() else None
        if stop is not None:
            stop.stop("immediate")
        shutil.rmtree(KEEP, ignore_errors=True)
    KEEP.mkdir()
    archive = world_dir("pgvault-bench-wal-")
    cluster = make_cluster(
        bindir=bindir,
        archive_command=f"cp %p {archive}/%f",
        settings={
            "shared_buffers": "256MB",
            "max_wal_size": "256MB",
            "min_wal_size": "32MB",
            "checkpoint_timeout": "30min",
        },
    )
    print(f"loading pgbench scale {scale} and {blob_mb} MB of random bytea ...", flush=True)
    started = time.monotonic()
    as_postgres(
        [f"{bindir}/pgbench", "-i", "-q", "-s", str(scale), *cluster.conninfo_args(), "postgres"],
        timeout=3600,
    )
    cluster.sql("create table blobs(id int primary key, payload bytea)")
    cluster.sql("alter table blobs alter payload set storage external")  # no compression try
    conn = cluster.connect()
    with conn.cursor() as cur:
        for i in range(blob_mb):
            cur.execute("insert into blobs values (%s, %s)", (i, os.urandom(MB)))
    conn.close()
    cluster.sql("vacuum analyze")
    cluster.sql("checkpoint")
    print(f"loaded in {time.monotonic() - started:.0f} s", flush=True)
    state = {
        "cluster": {
            "base": cluster.base,
            "data": cluster.data,
            "sock": cluster.sock,
            "port": cluster.port,
            "bindir": cluster.bindir,
        },
        "archive": archive,
    }
    marker.write_text(json.dumps(state))
    return cluster, archive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--blob-mb", type=int, default=300)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="reuse the cluster of a previous run")
    parser.add_argument(
        "--compressions", default="none,lz4,zstd,gzip", help="comma-separated, e.g. snappy,bzip2"
    )
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--skip-barman", action="store_true")
    args = parser.parse_args()
    use_own_state_dir()  # its jobs never land in the operator's state

    cluster, archive = build_cluster(args.scale, args.blob_mb, args.reuse)
    cluster.sql("checkpoint")
    pgdata = cluster.data
    size = tree_size(pgdata)
    wal = tree_size(os.path.join(pgdata, "pg_wal"))
    db_size = int(cluster.one("select sum(pg_database_size(oid)) from pg_database"))
    print(
        f"data directory {size / MB:.0f} MB (pg_wal {wal / MB:.0f} MB), "
        f"databases {db_size / MB:.0f} MB; {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    figures: list[Figure] = []
    conn = [*cluster.conninfo_args()]
    parent, name = os.path.split(pgdata)
    raw_cmd = ["sh", "-c", f"tar -cf - -C {parent} {name} | zstd -3 -T2 -q >/dev/null"]
    subprocess.run(raw_cmd, check=True)  # warm the page cache
    raw_times: list[float] = []

    def raw() -> float:
        dt = measured(raw_cmd)[0]
        raw_times.append(dt)
        return dt

    def pgvault(dest: TestDestination, compression: str) -> Run:
        flags = [] if compression == "none" else [f"--{compression}"]
        cmd = [PGVAULT, "--batch", "backup", "-v", "--immediate-checkpoint", *flags, *conn]
        cmd.append("--no-wal-check")  # WAL goes to a cp directory, as for barman-cloud
        dt, rss, err = measured([*cmd, *dest.cli_args, dest.url, "bench"], dest.env)
        found = re.search(r"([\d.]+) MiB read", err)
        read = float(found.group(1)) * 1024 * 1024 / MB if found else None
        return Run(dt, rss, read, clear(dest))

    def barman(dest: TestDestination, compression: str) -> Run:
        flags = [] if compression == "none" else [f"--{compression}"]
        cmd = [barman_bin("barman-cloud-backup"), "--immediate-checkpoint", *flags, *conn]
        dt, rss, _ = measured([*cmd, *dest.cli_args, dest.url, "barman"], dest.env)
        return Run(dt, rss, None, clear(dest))

    def figure(tool: str, where: str, compression: str, runs: list[Run]) -> Figure:
        fastest = min(runs, key=lambda r: r.seconds)
        return Figure(
            tool,
            where,
            compression,
            fastest.seconds,
            size / MB / fastest.seconds,
            max(r.rss for r in runs),
            fastest.stored,
            read_mb=fastest.read,
        )

    # Each pgvault run is paired with the run it is compared with, just before it, so that
    # both see the same load on the shared cores; ratios are the median over the pairs.
    moto = None if args.skip_s3 else start_moto()
    local = make_destination("file", {})
    try:
        compressions = args.compressions.split(",")
        for compression in [] if args.skip_local else compressions:
            pairs = [(raw(), pgvault(local, compression)) for _ in range(args.runs)]
            mine = figure("pgvault", "local dir", compression, [p for _, p in pairs])
            mine.ratio_to_raw = statistics.median(r / p.seconds for r, p in pairs)
            figures.append(mine)
            print(
                f"{mine.tool} local {compression}: {mine.seconds:.2f} s, "
                f"x{mine.ratio_to_raw:.2f} of raw, RSS {mine.peak_rss_mb:.0f} MB",
                flush=True,
            )
        if moto is not None:
            os.environ.update(moto.env)
            s3 = make_destination("s3", {"s3": moto})
            for compression in compressions:
                with_barman = compression != "zstd" and not args.skip_barman
                pairs_b: list[tuple[Run, Run]] = []
                runs: list[Run] = []
                for _ in range(args.runs):
                    if with_barman:
                        theirs = barman(s3, compression)
                        pairs_b.append((theirs, pgvault(s3, compression)))
                        runs.append(pairs_b[-1][1])
                    else:
                        runs.append(pgvault(s3, compression))
                mine = figure("pgvault", "S3 (moto)", compression, runs)
                figures.append(mine)
                if pairs_b:
                    theirs_fig = figure(
                        "barman-cloud 3.19.1", "S3 (moto)", compression, [b for b, _ in pairs_b]
                    )
                    mine.ratio_to_barman = statistics.median(
                        b.seconds / p.seconds for b, p in pairs_b
                    )
                    figures.append(theirs_fig)
                print(
                    f"pgvault S3 {compression}: {mine.seconds:.2f} s, RSS "
                    f"{mine.peak_rss_mb:.0f} MB, vs barman {mine.ratio_to_barman}",
                    flush=True,
                )
    finally:
        local.drop()
        if moto is not None:
            moto.stop()
    if not raw_times:
        raw()
    best_raw = min(raw_times)
    figures.insert(
        0,
        Figure(
            "tar \\| zstd -3 -T2",
            "/dev/null",
            "zstd",
            best_raw,
            size / MB / best_raw,
            None,
            read_mb=size / MB,
        ),
    )
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}\n")
    print(table(figures, size, wal))
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    out = results / f"backup-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps([asdict(f) for f in figures], indent=2))
    print(f"\nsaved {out}")
    _ = archive, resource
    return 0


def clear(dest: TestDestination) -> float:
    """Delete everything stored (moto keeps objects in RAM); returns the MB that were stored."""
    with dest.store() as store:
        objects = list(store.list_objects(""))
        stored = sum(o.size for o in objects if ".tar" in o.key) / MB
        store.delete_many([o.key for o in objects])
    return stored


def table(figures: list[Figure], size: int, wal: int) -> str:
    lines = [
        f"Data directory: {size / MB:.0f} MB (pg_wal {wal / MB:.0f} MB); "
        f"{os.cpu_count()} shared cores.",
        "",
        "| tool | destination | compression | time (s) | MB/s | vs raw pipeline |"
        " vs barman-cloud | peak RSS (MB) | read (MB) | read MB/s | stored (MB) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        lines.append(
            f"| {f.tool} | {f.destination} | {f.compression} | {f.seconds:.2f} | "
            f"{f.mb_per_s:.0f} | {fmt(f.ratio_to_raw, 2)} | {fmt(f.ratio_to_barman, 1, 'x')} | "
            f"{fmt(f.peak_rss_mb, 0)} | {fmt(f.read_mb, 0)} | "
            f"{fmt(f.read_mb / f.seconds if f.read_mb else None, 0)} | {fmt(f.stored_mb, 0)} |"
        )
    return "\n".join(lines)


def fmt(value: float | None, digits: int, suffix: str = "") -> str:
    return "" if value is None else f"{value:.{digits}f}{suffix}"


if __name__ == "__main__":
    sys.exit(main())
