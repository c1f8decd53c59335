"""Logical backup and restore: pgvault next to pg_dump/pg_restore on the same data, same run.

    .venv/bin/python -P bench/logical.py [--scale 10] [--runs 2] [--big-table-gb 1] [--before DIR]

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
--before DIR runs another checkout's pgvault too (e.g. `git archive main` unpacked), in the
same rounds, the two versions' order alternating; each version is run as
`python -P -c 'from tui.cli import main'` with PYTHONPATH set to its tree.
Peak RSS is the largest resident set of the command's process tree (pg_dump included).
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.backup import measured, tree_size  # noqa: E402
from bench.state import use_own_state_dir  # noqa: E402
from tests.support.pg_versions import versioned_cluster  # noqa: E402
from tests.support.postgres import Cluster  # noqa: E402

CLIENT = REPO / ".tools" / "postgres" / "17-client" / "bin"
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


def pgvault_cmd() -> list[str]:
    """pgvault as `python -P`: the working directory stays off sys.path, so PYTHONPATH
    (pgvault_env) decides which checkout's modules run."""
    return [sys.executable, "-P", "-c", "import sys; from tui.cli import main; sys.exit(main())"]


def pgvault_env(source: Path) -> dict[str, str]:
    return {"PGVAULT_PG_BINDIRS": str(CLIENT), "PYTHONPATH": str(source)}


def newest_id(dest: str) -> str:
    """The newest backup of the destination: IDs sort by time."""
    return sorted(os.listdir(os.path.join(dest.removeprefix("file://"), SERVER, "logical")))[-1]


def settled(cluster: Cluster) -> None:
    """Before each timed step: the previous step's writes flushed by a checkpoint, not
    during the next step (which would pay for whichever ran before it)."""
    cluster.sql("checkpoint")


def pgvault_backup(cluster: Cluster, dest: str, source: Path) -> tuple[float, float]:
    settled(cluster)
    return measured(
        [*pgvault_cmd(), "--batch", "backup", dest, SERVER, *pv_conn(cluster),
         "--database", "bench", "-J", "2", "--zstd", "-v"],
        pgvault_env(source),
    )[:2]  # fmt: skip


def pgvault_restore(cluster: Cluster, dest: str, source: Path, db: str) -> tuple[float, float]:
    settled(cluster)
    return measured(
        [*pgvault_cmd(), "--batch", "restore", dest, SERVER, newest_id(dest),
         *pv_conn(cluster), "--new-db-name", db, "-J", "2"],
        pgvault_env(source),
    )[:2]  # fmt: skip


def one_round(
    cluster: Cluster, work: str, n: int, sources: dict[str, Path]
) -> dict[str, tuple[float, float]]:
    """The tools, then each version of pgvault (their order alternates between rounds)."""
    out: dict[str, tuple[float, float]] = {}
    order = list(sources.items())
    if n % 2:
        order.reverse()
    dump = os.path.join(work, f"dump{n}")
    cmd = [str(CLIENT / "pg_dump"), *conn(cluster), "-Fd", "-j", "2", "-Z", "zstd", "-f", dump]
    settled(cluster)
    out["pg_dump"] = measured([*cmd, "bench"])[:2]
    for label, source in order:
        out[f"{label} backup"] = pgvault_backup(cluster, f"file://{work}/dest-{label}", source)
    settled(cluster)
    created = measured([str(CLIENT / "createdb"), *conn(cluster), f"raw{n}"])[0]
    seconds, rss = measured(
        [str(CLIENT / "pg_restore"), *conn(cluster), "-j", "2", "-d", f"raw{n}", dump]
    )[:2]
    out["pg_restore"] = (created + seconds, rss)  # pgvault's restore creates its database too
    source_print = fingerprint(cluster, "bench")
    for label, source in order:
        db = f"pv_{label}{n}"
        out[f"{label} restore"] = pgvault_restore(
            cluster, f"file://{work}/dest-{label}", source, db
        )
        if fingerprint(cluster, db) != source_print:
            raise RuntimeError(f"pgvault's ({label}) restore {db} differs from the source")
        cluster.sql(f"drop database {db}")
    cluster.sql(f"drop database raw{n}")
    out["_size"] = (tree_size(dump) / 1e6, 0.0)
    shutil.rmtree(dump)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--big-table-gb", type=float, default=0, metavar="G")
    parser.add_argument(
        "--before", metavar="DIR", help="another checkout to compare with, paired in each round"
    )
    args = parser.parse_args()
    use_own_state_dir()  # its jobs never land in the operator's state
    sources = {"pgvault": REPO}
    if args.before:
        sources = {"after": REPO, "before": Path(args.before).resolve()}
    for source in sources.values():  # as an installed pgvault: no module compiled per run
        for package in ("core", "tui"):
            compileall.compile_dir(source / package, quiet=1)
    cluster = versioned_cluster(17)
    work = tempfile.mkdtemp(prefix="pgvault-bench-logical-")
    try:
        cluster.sql("create database bench")
        # autovacuum off: the vacuum of what one step loaded would run during the next step
        # (pg_restore always runs first); no step here is timed with it
        cluster.sql("alter system set autovacuum = off")
        cluster.sql("select pg_reload_conf()")
        measured(
            [str(CLIENT / "pgbench"), *conn(cluster), "-i", "-q", "-s", str(args.scale), "bench"]
        )
        if args.big_table_gb:
            make_big(cluster, args.big_table_gb)
        size = cluster.one("select pg_database_size('bench')") / 1e6
        rounds = [one_round(cluster, work, n, sources) for n in range(args.runs)]
    finally:
        cluster.drop()
        shutil.rmtree(work, ignore_errors=True)
    big = f" + {args.big_table_gb:g} GiB table" if args.big_table_gb else ""
    print(
        f"pgbench -s {args.scale}{big}: {size:.0f} MB database, {rounds[0]['_size'][0]:.0f} MB "
        f"dump; load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}"
    )
    print(
        "| step | version | tool s | pgvault s | ratio | tool peak RSS MB | pgvault peak RSS MB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for tool, step in (("pg_dump", "backup"), ("pg_restore", "restore")):
        for label in sources:
            ours = f"{label} {step}"
            ratio = statistics.median(r[ours][0] / r[tool][0] for r in rounds)
            print(
                f"| {tool} | {label} | {min(r[tool][0] for r in rounds):.2f} "
                f"| {min(r[ours][0] for r in rounds):.2f} | {ratio:.2f} "
                f"| {max(r[tool][1] for r in rounds):.0f} | {max(r[ours][1] for r in rounds):.0f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
