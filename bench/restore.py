"""Restore throughput: pgvault restore next to the raw download + decompress of its objects.

    .venv/bin/python bench/restore.py [--scale 25] [--blob-mb 300] [--runs 2]
                                      [--compressions zstd,gzip] [--skip-local] [--skip-s3]

Two PostgreSQL 15 clusters: one holding `pgbench -i -s SCALE` (compresses twentyfold), one
holding --blob-mb MB of random bytea stored EXTERNAL (incompressible: the restore is not
only decompression), each backed up by pgvault once per compression to a local directory
and to the S3 emulator (moto on 127.0.0.1). Then, on the
same objects in the same run, in rounds:
  - raw: a fresh Python process reads the backup's tar objects (open() for the local
    directory, boto3 get_object for S3; parts two at a time, as pgvault's workers go here)
    through the codec's stream reader and discards the bytes: no checksum, no tar parsing,
    no file written. The limit a restore could reach on this machine.
  - `pgvault --batch restore` of that backup into a fresh directory (fsync, the default);
  - the same with --no-sync;
  - for the local directory, `zstd -dc OBJECT | tar -xf -` (or gzip) into a fresh directory:
    what the files cost to create and write here, without fsync;
  - for the local directory, both again into /dev/shm (tmpfs): the same work without the
    disk's file system, which shows how much of the time is creating and writing files.
Each pgvault run is paired with the raw run just before it; a ratio is the median over the
pairs of raw seconds / pgvault seconds (1.0: as fast as the raw read), a time the best run.
MB/s is the decompressed tar bytes over wall time, for every row. Peak RSS is the largest
resident set of the process or any of its children. The page cache is warm (one untimed raw read
first). Results print as a markdown table and are saved under
bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.backup import fmt, measured, tree_size  # noqa: E402
from bench.state import use_own_state_dir  # noqa: E402
from core.catalog.layout import ServerLayout  # noqa: E402
from core.codecs import codec_for_suffix  # noqa: E402
from core.urls import parse_location  # noqa: E402
from tests.support.destinations import TestDestination, make_destination  # noqa: E402
from tests.support.emulators import start_moto  # noqa: E402
from tests.support.postgres import (  # noqa: E402
    Cluster,
    as_postgres,
    debian_bindir,
    ensure_postgres_user,
    make_cluster,
    pgvault_for_postgres,
    world_dir,
)

MB = 1_000_000
MiB = 1024 * 1024
SERVER = "bench"
PGVAULT = str(Path(sys.executable).parent / "pgvault")
TMPFS = "/dev/shm"  # the same restores without the disk's file system, local objects only


@dataclass
class Figure:
    data: str
    tool: str
    destination: str
    compression: str
    seconds: float
    mb_per_s: float
    peak_rss_mb: float | None
    ratio_to_raw: float | None = None
    ratio_to_tar: float | None = None


@dataclass
class Backup:
    data: str  # pgbench or random
    dest: TestDestination
    where: str
    compression: str
    backup_id: str
    keys: list[str]  # the tar objects, relative to the destination's prefix
    stored: int
    tar_bytes: int = 0


# ---- the raw limit (runs in its own process) ------------------------------------------------


def raw_read(provider: str, root: str, endpoint: str, keys: list[str]) -> int:
    """Read and decompress every object, two at a time; the decompressed bytes."""

    def one(key: str) -> int:
        _, codec = codec_for_suffix(key)
        source: Any
        if provider == "file":
            source = open(os.path.join(root, key), "rb")  # noqa: SIM115
        else:
            import boto3

            bucket, _, prefix = root.partition("/")
            client = boto3.client("s3", endpoint_url=endpoint)
            full = f"{prefix}/{key}" if prefix else key
            source = client.get_object(Bucket=bucket, Key=full)["Body"]
        total = 0
        with source:
            reader = codec.stream_reader(source) if codec else source
            while chunk := reader.read(MiB):
                total += len(chunk)
        return total

    with ThreadPoolExecutor(max_workers=max(1, min(2, len(keys)))) as pool:
        return sum(pool.map(one, keys))


def raw_main(argv: list[str]) -> int:
    provider, root, endpoint, *keys = argv
    print(raw_read(provider, root, endpoint, keys))
    return 0


# ---- the benchmark --------------------------------------------------------------------------


def build_cluster(scale: int, blob_mb: int = 0) -> Cluster:
    """pgbench at SCALE, or (blob_mb) only a table of incompressible bytea."""
    bindir = debian_bindir(15)
    cluster = make_cluster(
        bindir=bindir,
        settings={
            "shared_buffers": "256MB",
            "max_wal_size": "512MB",
            "checkpoint_timeout": "30min",
        },
    )
    pgbench = f"{bindir}/pgbench"
    if blob_mb:
        print(f"loading {blob_mb} MB of random bytea ...", flush=True)
        cluster.sql("create table blobs(id int primary key, payload bytea)")
        cluster.sql("alter table blobs alter payload set storage external")  # no compression
        conn = cluster.connect()
        with conn.cursor() as cur:
            for i in range(blob_mb):
                cur.execute("insert into blobs values (%s, %s)", (i, os.urandom(MB)))
        conn.close()
    else:
        print(f"loading pgbench scale {scale} ...", flush=True)
        as_postgres(
            [pgbench, "-i", "-q", "-s", str(scale), *cluster.conninfo_args(), "postgres"],
            timeout=3600,
        )
    cluster.sql("vacuum analyze")
    cluster.sql("checkpoint")
    return cluster


def server(data: str) -> str:
    """One server name per data set: the two clusters are different systems."""
    return f"{SERVER}-{data}"


def take_backup(
    data: str, cluster: Cluster, dest: TestDestination, where: str, compression: str
) -> Backup:
    result = subprocess.run(
        [
            *(PGVAULT, "--batch", "backup", "--immediate-checkpoint", f"--{compression}"),
            "--no-wal-check",  # the bench cluster does not archive WAL
            *(*cluster.conninfo_args(), *dest.cli_args, dest.url, server(data)),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **dest.env},
    )
    if result.returncode != 0:
        raise RuntimeError(f"backup failed: {result.stderr}")
    backup_id = result.stdout.strip()
    prefix = ServerLayout(server(data)).backup_prefix(backup_id)
    with dest.store() as store:
        tars = [o for o in store.list_objects(prefix) if ".tar" in o.key]
    return Backup(
        data, dest, where, compression, backup_id, [o.key for o in tars], sum(o.size for o in tars)
    )


def raw_command(backup: Backup) -> list[str]:
    dest = backup.dest
    if dest.provider == "file":
        root, endpoint = dest.url.removeprefix("file://"), ""
    else:
        location = parse_location(dest.url)
        root = f"{dest.bucket}/{location.prefix.strip('/')}"
        endpoint = dest.config.endpoint_url or ""
    return [sys.executable, __file__, "raw", dest.provider, root, endpoint, *backup.keys]


def warm(backup: Backup) -> None:
    """One untimed raw read: the decompressed size, and the page cache warm for every run."""
    out = subprocess.run(
        raw_command(backup),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **backup.dest.env},
    )
    backup.tar_bytes = int(out.stdout)


def run_raw(backup: Backup) -> tuple[float, float]:
    seconds, rss, _ = measured(raw_command(backup), backup.dest.env)
    return seconds, rss


def fresh_dir(prefix: str, tmpfs: bool) -> str:
    """A fresh directory the postgres user can reach, on the disk (/tmp) or in /dev/shm."""
    if not tmpfs:
        return world_dir(prefix)
    path = tempfile.mkdtemp(prefix=prefix, dir=TMPFS)
    if os.geteuid() == 0:
        pw = ensure_postgres_user()
        os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0o755)
    return path


def run_tar(backup: Backup, tmpfs: bool = False) -> float:
    """`zstd -dc OBJECT | tar -xf -` into a fresh directory (local objects only, no fsync)."""
    base = fresh_dir("pgvault-bench-tar-", tmpfs)
    root = backup.dest.url.removeprefix("file://")
    tool = {"zstd": "zstd -dc", "gzip": "gzip -dc", "lz4": "lz4 -dc"}[backup.compression]
    pipeline = " && ".join(
        f"{tool} {shlex.quote(os.path.join(root, key))} | tar -xf - -C {shlex.quote(base)}"
        for key in backup.keys
    )
    try:
        return measured(["sh", "-c", f"set -e; {pipeline}"])[0]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run_restore(
    backup: Backup, pgvault_bin: str, *flags: str, tmpfs: bool = False
) -> tuple[float, float]:
    base = fresh_dir("pgvault-bench-restore-", tmpfs)
    data = os.path.join(base, "data")
    try:
        dest = backup.dest
        seconds, rss, _ = measured(
            [
                *(PGVAULT, "--batch", "restore", "--pgvault-command", pgvault_bin, *flags),
                "--accept-wal-gap",  # the bench cluster does not archive WAL
                *(*dest.cli_args, dest.url, server(backup.data), backup.backup_id, data),
            ],
            dest.env,
        )
        restored = tree_size(data)
        if restored < backup.tar_bytes * 0.9:  # a tar adds headers and padding, no more
            raise RuntimeError(f"restored {restored} bytes of a {backup.tar_bytes}-byte backup")
        return seconds, rss
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    if sys.argv[1:2] == ["raw"]:
        return raw_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=25)
    parser.add_argument("--blob-mb", type=int, default=300, help="0: no incompressible data set")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--compressions", default="zstd,gzip")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--skip-s3", action="store_true")
    args = parser.parse_args()
    use_own_state_dir()  # its jobs never land in the operator's state

    pgvault_bin = pgvault_for_postgres()
    moto = None if args.skip_s3 else start_moto()
    dests: list[tuple[TestDestination, str]] = []
    if not args.skip_local:
        dests.append((make_destination("file", {}), "local dir"))
    if moto is not None:
        os.environ.update(moto.env)
        dests.append((make_destination("s3", {"s3": moto}), "S3 (moto)"))
    figures: list[Figure] = []
    backups: list[Backup] = []
    sets = [("pgbench", args.scale, 0)] + ([("random", 0, args.blob_mb)] if args.blob_mb else [])
    try:
        for data, scale, blob_mb in sets:
            cluster = build_cluster(scale, blob_mb)
            try:
                print(
                    f"{data}: data directory {tree_size(cluster.data) / MB:.0f} MB; "
                    f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
                backups += [
                    take_backup(data, cluster, dest, where, compression)
                    for dest, where in dests
                    for compression in args.compressions.split(",")
                ]
            finally:
                cluster.drop()  # the restores should not compete with an idle server's work
        for b in backups:
            warm(b)
            raw_runs: list[tuple[float, float]] = []
            tar_runs: dict[bool, list[float]] = {False: [], True: []}
            local = b.dest.provider == "file"
            variants: list[tuple[str, list[str], bool]] = [
                ("fsync", [], False),
                ("--no-sync", ["--no-sync"], False),
            ]
            if local and os.path.isdir(TMPFS):
                variants.append(("in tmpfs", [], True))
            mine: dict[str, list[tuple[float, float, float, float | None]]] = {
                variant: [] for variant, _, _ in variants
            }
            for _ in range(args.runs):
                for variant, flags, tmpfs in variants:
                    raw = run_raw(b)
                    raw_runs.append(raw)
                    tar = run_tar(b, tmpfs) if local else None
                    if tar is not None:
                        tar_runs[tmpfs].append(tar)
                    seconds, rss = run_restore(b, pgvault_bin, *flags, tmpfs=tmpfs)
                    to_tar = tar / seconds if tar is not None else None
                    mine[variant].append((seconds, rss, raw[0] / seconds, to_tar))
            mb = b.tar_bytes / MB
            best_raw = min(raw_runs)
            figures.append(
                Figure(
                    b.data,
                    "raw read + decompress",
                    b.where,
                    b.compression,
                    best_raw[0],
                    mb / best_raw[0],
                    max(r for _, r in raw_runs),
                )
            )
            for tmpfs, runs_of_tar in tar_runs.items():
                if runs_of_tar:
                    best_tar = min(runs_of_tar)
                    figures.append(
                        Figure(
                            b.data,
                            f"{b.compression} -dc \\| tar -x" + (" (in tmpfs)" if tmpfs else ""),
                            b.where,
                            b.compression,
                            best_tar,
                            mb / best_tar,
                            None,
                        )
                    )
            for variant, runs in mine.items():
                best = min(r[0] for r in runs)
                figures.append(
                    Figure(
                        b.data,
                        f"pgvault restore ({variant})",
                        b.where,
                        b.compression,
                        best,
                        mb / best,
                        max(r[1] for r in runs),
                        statistics.median(r[2] for r in runs),
                        median_of([r[3] for r in runs]),
                    )
                )
            print(
                f"{b.data} {b.where} {b.compression}: {mb:.0f} MB of tar in "
                f"{b.stored / MB:.0f} MB stored; "
                + ", ".join(
                    f"{f.tool} {f.seconds:.2f} s"
                    for f in figures[-(1 + len(variants) + sum(map(bool, tar_runs.values()))) :]
                ),
                flush=True,
            )
    finally:
        for dest, _ in dests:
            dest.drop()
        if moto is not None:
            moto.stop()
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}\n")
    print(table(figures, backups))
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    out = results / f"restore-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps([asdict(f) for f in figures], indent=2))
    print(f"\nsaved {out}")
    return 0


def median_of(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def table(figures: list[Figure], backups: list[Backup]) -> str:
    sizes = "; ".join(
        f"{b.data} {b.where} {b.compression}: {b.tar_bytes / MB:.0f} MB of tar stored as "
        f"{b.stored / MB:.0f} MB in {len(b.keys)} object(s)"
        for b in backups
    )
    lines = [
        f"Backups: {sizes}. {os.cpu_count()} shared cores.",
        "",
        "| data | tool | source | compression | time (s) | MB/s | vs raw | vs tar -x "
        "| peak RSS (MB) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        lines.append(
            f"| {f.data} | {f.tool} | {f.destination} | {f.compression} | {f.seconds:.2f} | "
            f"{f.mb_per_s:.0f} | {fmt(f.ratio_to_raw, 2)} | {fmt(f.ratio_to_tar, 2)} | "
            f"{fmt(f.peak_rss_mb, 0)} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
