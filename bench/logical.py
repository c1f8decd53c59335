"""Logical backup and restore: pgvault next to pg_dump/pg_restore on the same data, same run.

    .venv/bin/python bench/logical.py [--scale 10] [--runs 2] [--big-table-gb 1]

A PostgreSQL 17 cluster holding `pgbench -i -s SCALE` (its pg_dump and pg_restore come with
zstd). Each round, one after the other:
  - `pg_dump -Fd -j 2 -Z zstd -f DIR` to local disk, and
    `pgvault --batch backup file://DEST SERVER --database bench -J 2 --zstd` (the same
    pg_dump, plus the upload of every file to a local destination and logical.json);
  - `createdb` + `pg_restore -j 2 -d DB DIR`, and
    `pgvault --batch restore file://DEST SERVER ID --new-db-name DB -J 2` (download, then
    the same pg_restore).
`--big-table-gb G` adds a table `big` of at least G GiB (rows of hex digests: zstd halves
them, no more) beside pgbench's. Every round then checks that pgvault's restore under the
new name equals the source: per table, the row count and the md5 of its sorted row digests.
A ratio is pgvault's time over the tool's (goal: at most 1.1), the median over rounds.
Peak RSS is the largest resident set of the command's process tree (pg_dump included).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.backup import measured, tree_size  # noqa: E402
from tests.support.pg_versions import versioned_cluster  # noqa: E402
from tests.support.postgres import Cluster  # noqa: E402

CLIENT = REPO / ".tools" / "postgres" / "17-client" / "bin"
PGVAULT = str(Path(sys.executable).parent / "pgvault")
SERVER = "bench"


def conn(cluster: Cluster) -> list[str]:
    return ["-h", cluster.sock, "-p", str(cluster.port), "-U", "postgres"]


def pv_conn(cluster: Cluster) -> list[str]:
    """pgvault's: `restore` has no -h (it is --help there: exit 0, nothing restored)."""
    return ["--host", cluster.sock, "-p", str(cluster.port), "-U", "postgres"]


def make_big(cluster: Cluster, gib: float) -> None:
    """A table of at least `gib` GiB: ~560 bytes a row of md5 hex, inline (under TOAST's 2 kB)."""
    digests = " || ".join(f"md5((i * 16 + {k})::text)" for k in range(16))
    cluster.sql("create table big (id bigint primary key, payload text not null)", dbname="bench")
    rows, step = 0, 500_000
    while cluster.one("select pg_table_size('big')", dbname="bench") < gib * 1024**3:
        cluster.sql(
            f"insert into big select i, {digests} "
            f"from generate_series({rows + 1}, {rows + step}) i",
            dbname="bench",
        )
        rows += step
    cluster.sql("vacuum analyze big", dbname="bench")


def fingerprint(cluster: Cluster, dbname: str) -> dict[str, tuple[int, str]]:
    """Per table of schema public: (rows, md5 of the sorted md5s of its rows)."""
    tables = [
        r[0]
        for r in cluster.sql(
            "select tablename from pg_tables where schemaname = 'public' order by 1", dbname=dbname
        )
    ]
    out = {}
    for table in tables:
        count, digest = cluster.sql(
            f"select count(*), md5(coalesce(string_agg(h, '' order by h), '')) "
            f"from (select md5(t::text) h from {table} t) s",
            dbname=dbname,
        )[0]
        out[table] = (int(count), str(digest))
    return out


def one_round(cluster: Cluster, dest: str, work: str, n: int) -> dict[str, tuple[float, float]]:
    env = {"PGVAULT_PG_BINDIRS": str(CLIENT)}
    out: dict[str, tuple[float, float]] = {}
    dump = os.path.join(work, f"dump{n}")
    cmd = [str(CLIENT / "pg_dump"), *conn(cluster), "-Fd", "-j", "2", "-Z", "zstd", "-f", dump]
    out["pg_dump"] = measured([*cmd, "bench"])[:2]
    dt, rss, _ = measured(
        [PGVAULT, "--batch", "backup", dest, SERVER, *pv_conn(cluster), "--database", "bench",
         "-J", "2", "--zstd", "-v"],
        env,
    )  # fmt: skip
    out["pgvault backup"] = (dt, rss)
    # the newest: IDs sort by time
    backup_id = sorted(os.listdir(os.path.join(dest.removeprefix("file://"), SERVER, "logical")))[
        -1
    ]
    cluster.sql(f"create database raw{n}")
    out["pg_restore"] = measured(
        [str(CLIENT / "pg_restore"), *conn(cluster), "-j", "2", "-d", f"raw{n}", dump]
    )[:2]
    out["pgvault restore"] = measured(
        [PGVAULT, "--batch", "restore", dest, SERVER, backup_id, *pv_conn(cluster),
         "--new-db-name", f"pv{n}", "-J", "2"],
        env,
    )[:2]  # fmt: skip
    if fingerprint(cluster, f"pv{n}") != fingerprint(cluster, "bench"):
        raise RuntimeError(f"pgvault's restore pv{n} differs from the source database")
    out["_size"] = (tree_size(dump) / 1e6, 0.0)
    shutil.rmtree(dump)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--big-table-gb", type=float, default=0, metavar="G")
    args = parser.parse_args()
    cluster = versioned_cluster(17)
    work = tempfile.mkdtemp(prefix="pgvault-bench-logical-")
    try:
        cluster.sql("create database bench")
        measured(
            [str(CLIENT / "pgbench"), *conn(cluster), "-i", "-q", "-s", str(args.scale), "bench"]
        )
        if args.big_table_gb:
            make_big(cluster, args.big_table_gb)
        size = cluster.one("select pg_database_size('bench')") / 1e6
        dest = f"file://{work}/dest"
        rounds = [one_round(cluster, dest, work, n) for n in range(args.runs)]
    finally:
        cluster.drop()
        shutil.rmtree(work, ignore_errors=True)
    big = f" + {args.big_table_gb:g} GiB table" if args.big_table_gb else ""
    print(
        f"pgbench -s {args.scale}{big}: {size:.0f} MB database, {rounds[0]['_size'][0]:.0f} MB dump"
    )
    print("| step | tool s | pgvault s | ratio | tool peak RSS MB | pgvault peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for tool, ours in (("pg_dump", "pgvault backup"), ("pg_restore", "pgvault restore")):
        ratio = statistics.median(r[ours][0] / r[tool][0] for r in rounds)
        best_tool = min(r[tool][0] for r in rounds)
        best_ours = min(r[ours][0] for r in rounds)
        rss_tool = max(r[tool][1] for r in rounds)
        rss_ours = max(r[ours][1] for r in rounds)
        print(
            f"| {tool} | {best_tool:.2f} | {best_ours:.2f} | {ratio:.2f} | {rss_tool:.0f} "
            f"| {rss_ours:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
