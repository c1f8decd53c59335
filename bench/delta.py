"""Delta restore: `restore --delta` over a stopped cluster next to a full restore of its backup.

    .venv/bin/python bench/delta.py [--tables 20] [--table-mb 10] [--runs 3] [--zstd]

A PostgreSQL cluster archiving through pgvault to a local directory holds TABLES tables of
TABLE-MB each; it is backed up (plain tar unless --zstd), then about 5% of its pages change
and it stops. Two shapes of that 5%:
  - grouped: every row of one table in twenty rewritten (the other tables' files unchanged);
  - spread: 5% of the pages of every table touched (one row in twenty pages' worth), so
    that every table's file differs from the backup.
A delta restore keeps or rewrites whole files (as pgBackRest's), so the spread shape is
the worst case: every file is fetched again. In rounds (full, then delta, interleaved):
  - full: `pgvault --batch restore --target-immediate` into a new directory;
  - delta: the same with --delta into a fresh copy of the changed, stopped data directory
    (the copy is made before the clock starts).
Both fsync (the default). The figure is the median delta time over the median full time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.state import use_own_state_dir  # noqa: E402
from tests.support.cli import pgvault  # noqa: E402
from tests.support.destinations import TestDestination, make_destination  # noqa: E402
from tests.support.pitr import SERVER, Source, make_source  # noqa: E402
from tests.support.postgres import pgvault_for_postgres, world_dir  # noqa: E402

ROW_BYTES = 1000  # one row of filler: about 8 rows a page


def fill(source: Source, tables: int, table_mb: int) -> None:
    rows = table_mb * 1024 * 1024 // (ROW_BYTES + 40)
    for n in range(tables):
        source.cluster.sql(
            f"create table t{n} with (fillfactor = 100) as "
            f"select g as id, repeat(md5(g::text), {ROW_BYTES // 32}) as pad "
            f"from generate_series(1, {rows}) g"
        )
    source.cluster.sql("checkpoint")


def change(source: Source, tables: int, shape: str) -> None:
    """About 5% of the pages: one table in twenty whole, or one page in twenty of each."""
    if shape == "grouped":
        for n in range(max(1, tables // 20)):
            source.cluster.sql(f"update t{n} set pad = upper(pad)")
    else:
        rows_per_page = 8  # 8 KiB pages, ~1 KiB rows
        for n in range(tables):
            source.cluster.sql(
                f"update t{n} set pad = upper(pad) where id % {rows_per_page * 20} = 1"
            )
    source.cluster.sql("checkpoint")
    source.cluster.stop()


def restore(dest: TestDestination, backup: str, data: str, *flags: str) -> float:
    started = time.monotonic()
    result = pgvault(
        "restore",
        "--target-immediate",
        *flags,
        dest.url,
        SERVER,
        backup,
        data,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return elapsed


def measure(dest: TestDestination, backup: str, changed: str, runs: int) -> tuple[float, float]:
    base = world_dir("pgvault-bench-delta-")
    full, delta = [], []
    try:
        for _ in range(runs):
            target = os.path.join(base, "full")
            full.append(restore(dest, backup, target))
            shutil.rmtree(target)
            shutil.rmtree(target + ".pgvault", ignore_errors=True)
            target = os.path.join(base, "delta")
            subprocess.run(["cp", "-a", changed, target], check=True)
            subprocess.run(["sync"], check=True)
            delta.append(restore(dest, backup, target, "--delta"))
            shutil.rmtree(target)
            shutil.rmtree(target + ".pgvault", ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return statistics.median(full), statistics.median(delta)


@dataclass(frozen=True)
class Settings:
    tables: int
    table_mb: int
    runs: int
    zstd: bool


def scenario(settings: Settings, shape: str, pgvault_bin: str) -> str:
    dest = make_destination("file", {})
    source = make_source(dest, pgvault_bin, scale=1)
    try:
        fill(source, settings.tables, settings.table_mb)
        backup = source.backup(*(("--zstd",) if settings.zstd else ()))
        source.archive_everything()
        change(source, settings.tables, shape)
        full, delta = measure(dest, backup, source.cluster.data, settings.runs)
    finally:
        source.cluster.drop()
        dest.drop()
    return (
        f"| {shape} | {'zstd' if settings.zstd else 'plain'} "
        f"| {settings.tables * settings.table_mb} MB "
        f"| {full:.2f} s | {delta:.2f} s | {delta / full:.2f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=20)
    parser.add_argument("--table-mb", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--zstd", action="store_true", help="a zstd backup (streamed whole)")
    parser.add_argument("--shapes", default="grouped,spread")
    args = parser.parse_args()
    use_own_state_dir()  # its jobs never land in the operator's state
    pgvault_bin = pgvault_for_postgres()
    settings = Settings(args.tables, args.table_mb, args.runs, args.zstd)
    rows = [scenario(settings, shape, pgvault_bin) for shape in args.shapes.split(",")]
    print("| 5% of pages changed | backup | data | full restore | delta restore | delta/full |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
