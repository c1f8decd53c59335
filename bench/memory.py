"""Peak RSS and time of backups and restores, this checkout against another one, interleaved.

    .venv/bin/python bench/memory.py [--scale 20] [--blob-mb 100] [--rounds 3] [--jobs N]
                                     [--compression zstd] [--before DIR] [--reuse]

One PostgreSQL 15 cluster holding `pgbench -i -s SCALE` plus --blob-mb MB of random bytea
stored EXTERNAL, kept under /tmp/pgvault-bench-memory for --reuse. Each round runs, for each
code version (this checkout, and --before: another source tree, e.g. `git archive main`
unpacked, put first on PYTHONPATH), one after the other so that both see the same load:
  - `pgvault --batch backup --COMPRESSION` (-J 2 unless --jobs) to a local directory;
  - the same to moto's S3 server on 127.0.0.1;
  - `pgvault --batch restore` (-J 4 unless --jobs) of one backup (taken once, by this
    checkout) from the local directory into a fresh directory.
Peak RSS is the largest resident set of the pgvault process or any of its children
(getrusage(RUSAGE_CHILDREN) of a wrapper process); times and RSS are medians over the rounds.
Results print as a markdown table and are saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.backup import clear, measured, tree_size  # noqa: E402
from bench.restore import build_cluster  # noqa: E402
from bench.state import use_own_state_dir  # noqa: E402
from tests.support.destinations import TestDestination, make_destination  # noqa: E402
from tests.support.emulators import start_moto  # noqa: E402
from tests.support.postgres import Cluster, pgvault_for_postgres, world_dir  # noqa: E402

MB = 1_000_000
KEEP = Path("/tmp/pgvault-bench-memory")
PGVAULT = str(Path(sys.executable).parent / "pgvault")
SERVER = "bench"


def cluster_for(scale: int, blob_mb: int, reuse: bool) -> Cluster:
    """pgbench at SCALE plus BLOB_MB of incompressible bytea; kept for --reuse."""
    marker = KEEP / "cluster.json"
    if reuse and marker.exists():
        cluster = Cluster(**json.loads(marker.read_text()))
        if not cluster.is_running():
            cluster.start()
        return cluster
    if marker.exists():
        Cluster(**json.loads(marker.read_text())).stop("immediate")
    shutil.rmtree(KEEP, ignore_errors=True)
    KEEP.mkdir()
    cluster = build_cluster(scale)
    if blob_mb:
        cluster.sql("create table blobs(id int primary key, payload bytea)")
        cluster.sql("alter table blobs alter payload set storage external")
        conn = cluster.connect()
        with conn.cursor() as cur:
            for i in range(blob_mb):
                cur.execute("insert into blobs values (%s, %s)", (i, os.urandom(MB)))
        conn.close()
        cluster.sql("checkpoint")
    fields = ("base", "data", "sock", "port", "bindir")
    marker.write_text(json.dumps({f: getattr(cluster, f) for f in fields}))
    return cluster


def env_for(source: str | None, dest: TestDestination) -> dict[str, str]:
    env = dict(dest.env)
    if source:
        env["PYTHONPATH"] = source
    return env


def jobs_flag(jobs: int | None) -> list[str]:
    """-J N, or nothing: each command's default (backup 2, restore 4)."""
    return [] if jobs is None else ["-J", str(jobs)]


def backup_cmd(
    cluster: Cluster, dest: TestDestination, jobs: int | None, compression: str
) -> list[str]:
    return [
        *(PGVAULT, "--batch", "backup", "--immediate-checkpoint", "--no-wal-check"),
        *(*jobs_flag(jobs), f"--{compression}", *cluster.conninfo_args()),
        *(*dest.cli_args, dest.url, SERVER),
    ]


def restore_run(
    dest: TestDestination, backup_id: str, source: str | None, jobs: int | None
) -> tuple[float, float]:
    base = world_dir("pgvault-bench-memory-restore-")
    try:
        seconds, rss, _ = measured(
            [
                *(PGVAULT, "--batch", "restore", "--pgvault-command", pgvault_for_postgres()),
                *(*jobs_flag(jobs), "--accept-wal-gap", *dest.cli_args),
                *(dest.url, SERVER, backup_id),
                os.path.join(base, "data"),
            ],
            env_for(source, dest),
        )
        return seconds, rss
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=20)
    parser.add_argument("--blob-mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, help="-J for every command (default: their own)")
    parser.add_argument("--compression", default="zstd")
    parser.add_argument("--before", help="another source tree to compare with (PYTHONPATH)")
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    use_own_state_dir()  # its jobs never land in the operator's state

    cluster = cluster_for(args.scale, args.blob_mb, args.reuse)
    print(f"data directory {tree_size(cluster.data) / MB:.0f} MB", flush=True)
    moto = start_moto()
    os.environ.update(moto.env)
    local = make_destination("file", {})
    s3 = make_destination("s3", {"s3": moto})
    restore_from = make_destination("file", {})
    out = subprocess.run(
        backup_cmd(cluster, restore_from, args.jobs, args.compression),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **restore_from.env},
    )
    backup_id = out.stdout.strip()
    versions = {"after": None, "before": args.before} if args.before else {"current": None}
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        for _ in range(args.rounds):
            for step, dest in (("backup, local dir", local), ("backup, S3 (moto)", s3)):
                for version, source in versions.items():
                    seconds, rss, _ = measured(
                        backup_cmd(cluster, dest, args.jobs, args.compression),
                        env_for(source, dest),
                    )
                    clear(dest)
                    samples.setdefault((step, version), []).append((seconds, rss))
            for version, source in versions.items():
                run = restore_run(restore_from, backup_id, source, args.jobs)
                samples.setdefault(("restore, local dir", version), []).append(run)
            print(f"round done, load average {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        moto.stop()
        for dest in (local, s3, restore_from):
            dest.drop()
    lines = [
        f"-J {args.jobs or 'default'}, {args.compression}, {args.rounds} rounds, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| step | version | time (s), median | peak RSS (MB), median | peak RSS, all runs |",
        "|---|---|---:|---:|---|",
    ]
    for (step, version), runs in samples.items():
        every = "/".join(f"{r:.0f}" for _, r in runs)
        lines.append(
            f"| {step} | {version} | {statistics.median(s for s, _ in runs):.2f} | "
            f"{statistics.median(r for _, r in runs):.0f} | {every} |"
        )
    print("\n".join(lines))
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    raw = [{"step": k[0], "version": k[1], "runs": v} for k, v in samples.items()]
    out = results / f"memory-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"args": vars(args), "samples": raw}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
