"""Full-backup throughput: pgvault against `tar | zstd` and barman-cloud-backup, same data, same run.

    .venv/bin/python bench/backup.py [--scale 100] [--blob-mb 300] [--runs 2] [--reuse]

Builds (or with --reuse, restarts) a PostgreSQL 15 cluster holding pgbench at --scale plus
--blob-mb of incompressible bytea, then times on the same data in the same run:
  - the raw pipeline `tar -cf - PGDATA | zstd -3 -T2 >/dev/null` (the reference);
  - `pgvault --batch backup` with none, lz4, zstd and gzip to a local directory and to the
    S3 emulator (moto on 127.0.0.1);
  - barman-cloud-backup (PGVAULT_BARMAN_BIN) with none, lz4 and gzip to the same emulator
    (barman-cloud 3.19 has no zstd for base backups).
Each figure is the best of --runs runs (the machine's cores are shared); MB/s is the data
directory's bytes over wall time, peak RSS is the backup process's (and its children's)
maximum resident set. The page cache is warm for every run (one untimed read first).
Results print as a markdown table and are saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

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


def tree_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run cmd in a fresh wrapper process; (seconds, peak RSS MB of cmd's process tree, stdout)."""
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
    return data["dt"], data["rss"] / 1024, data["out"]


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


def best(runs: int, fn: object) -> tuple[float, float, str]:
    results = [fn() for _ in range(runs)]  # type: ignore[operator]
    return min(results, key=lambda r: r[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--blob-mb", type=int, default=300)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="reuse the cluster of a previous run")
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--skip-barman", action="store_true")
    args = parser.parse_args()

    cluster, archive = build_cluster(args.scale, args.blob_mb, args.reuse)
    cluster.sql("checkpoint")
    pgdata = cluster.data
    size = tree_size(pgdata)
    wal = tree_size(os.path.join(pgdata, "pg_wal"))
    db_size = int(cluster.one("select sum(pg_database_size(oid)) from pg_database"))
    print(
        f"data directory {size / MB:.0f} MB (pg_wal {wal / MB:.0f} MB), "
        f"databases {db_size / MB:.0f} MB; {os.cpu_count()} cores",
        flush=True,
    )
    figures: list[Figure] = []

    parent, name = os.path.split(pgdata)
    raw_cmd = ["sh", "-c", f"tar -cf - -C {parent} {name} | zstd -3 -T2 -q >/dev/null"]
    subprocess.run(raw_cmd, check=True)  # warm the page cache
    dt, _, _ = best(args.runs, lambda: measured(raw_cmd))
    raw_rate = size / MB / dt
    figures.append(Figure("tar | zstd -3 -T2", "/dev/null", "zstd", dt, raw_rate, None))
    print(f"raw pipeline: {dt:.2f} s, {raw_rate:.0f} MB/s", flush=True)

    conn = [*cluster.conninfo_args()]
    moto = None if args.skip_s3 else start_moto()
    try:
        destinations: list[tuple[str, TestDestination]] = [
            ("local dir", make_destination("file", {}))
        ]
        if moto is not None:
            os.environ.update(moto.env)
            destinations.append(("S3 (moto)", make_destination("s3", {"s3": moto})))
        for label, dest in destinations:
            for compression in ("none", "lz4", "zstd", "gzip"):
                flags = [] if compression == "none" else [f"--{compression}"]

                def run_pgvault(
                    dest: TestDestination = dest, flags: list[str] = flags
                ) -> tuple[float, float, str]:
                    cmd = [
                        PGVAULT,
                        "--batch",
                        "backup",
                        "--immediate-checkpoint",
                        *flags,
                        *conn,
                        *dest.cli_args,
                        dest.url,
                        "bench",
                    ]
                    result = measured(cmd, dest.env)
                    clear(dest)
                    return result

                dt, rss, _ = best(args.runs, run_pgvault)
                stored = last_stored.get("mb")
                figure = Figure("pgvault", label, compression, dt, size / MB / dt, rss, stored)
                figure.ratio_to_raw = figure.mb_per_s / raw_rate
                figures.append(figure)
                print(
                    f"pgvault {label} {compression}: {dt:.2f} s, {figure.mb_per_s:.0f} MB/s, "
                    f"peak RSS {rss:.0f} MB, stored {stored:.0f} MB",
                    flush=True,
                )
        if moto is not None and not args.skip_barman:
            dest = make_destination("s3", {"s3": moto})
            for compression in ("none", "lz4", "gzip"):
                flags = [] if compression == "none" else [f"--{compression}"]
                cmd = [
                    barman_bin("barman-cloud-backup"),
                    "--immediate-checkpoint",
                    *flags,
                    *conn,
                    *dest.cli_args,
                    dest.url,
                    "barman",
                ]
                dt, rss, _ = measured(cmd, dest.env)
                stored = clear(dest)
                figure = Figure(
                    "barman-cloud 3.19.1", "S3 (moto)", compression, dt, size / MB / dt, rss, stored
                )
                figure.ratio_to_raw = figure.mb_per_s / raw_rate
                figures.append(figure)
                mine = next(
                    f
                    for f in figures
                    if f.tool == "pgvault"
                    and f.destination == "S3 (moto)"
                    and f.compression == compression
                )
                mine.ratio_to_barman = mine.mb_per_s / figure.mb_per_s
                print(
                    f"barman {compression}: {dt:.2f} s, {figure.mb_per_s:.0f} MB/s, "
                    f"peak RSS {rss:.0f} MB -> pgvault is {mine.ratio_to_barman:.1f}x",
                    flush=True,
                )
    finally:
        if moto is not None:
            moto.stop()

    print()
    print(table(figures, size, wal))
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    out = results / f"backup-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps([asdict(f) for f in figures], indent=2))
    print(f"\nsaved {out}")
    _ = archive, resource
    return 0


last_stored: dict[str, float] = {}


def clear(dest: TestDestination) -> float:
    """Delete everything stored (moto keeps objects in RAM); returns the MB that were stored."""
    with dest.store() as store:
        objects = list(store.list_objects(""))
        stored = sum(o.size for o in objects if ".tar" in o.key) / MB
        store.delete_many([o.key for o in objects])
    last_stored["mb"] = stored
    return stored


def table(figures: list[Figure], size: int, wal: int) -> str:
    lines = [
        f"Data directory: {size / MB:.0f} MB (pg_wal {wal / MB:.0f} MB); "
        f"{os.cpu_count()} shared cores.",
        "",
        "| tool | destination | compression | time (s) | MB/s | vs raw pipeline |"
        " vs barman-cloud | peak RSS (MB) | stored (MB) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        lines.append(
            f"| {f.tool} | {f.destination} | {f.compression} | {f.seconds:.2f} | "
            f"{f.mb_per_s:.0f} | {fmt(f.ratio_to_raw, 2)} | {fmt(f.ratio_to_barman, 1, 'x')} | "
            f"{fmt(f.peak_rss_mb, 0)} | {fmt(f.stored_mb, 0)} |"
        )
    return "\n".join(lines)


def fmt(value: float | None, digits: int, suffix: str = "") -> str:
    return "" if value is None else f"{value:.{digits}f}{suffix}"


if __name__ == "__main__":
    sys.exit(main())
