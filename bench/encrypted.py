"""Encrypted against plain: pgvault backup and restore of one cluster, side by side in one run.

    .venv/bin/python bench/encrypted.py [--scale 20] [--rounds 2] [--jobs 2] [--segments 16]
        [--archive-command walack|pgvault] [--wal-compression none|zstd|lz4] [--wal-only]

One PostgreSQL 15 cluster holding `pgbench -i -s SCALE` (bench/restore.py's build_cluster),
one local file:// destination with three servers: `bench-plain`, `bench-enc` (a key file
from `keys init --encryption-passphrase-file`: its restore unwraps the keys with one scrypt)
and `bench-id` (`keys init --encrypt-to` an `age-keygen` recipient: restored with
`--identity-file`, no scrypt). Per round, in an order that rotates: `pgvault --batch backup
--zstd -J JOBS` of each, then `pgvault --batch restore` of each into a fresh directory
(restore.py's run_restore). It prints the best time of each, the median over rounds of
the ratio encrypted/plain and the issue 16 goal.
Then the WAL fast path: on a second cluster (archive_mode on), a backlog of --segments
segments (bench/wal.py's build_backlog) drained by `wal-archive --async -J 4` to a plain and
to an encrypted server (bench/wal_drain.py's drain_once), alternating; rate ratio enc/plain.
The archive_command is the README's, `python -I -S tui/walack.py ...`, or with
--archive-command pgvault the `pgvault` script (a full interpreter start per segment).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.restore import PGVAULT, Backup, build_cluster, run_restore, warm  # noqa: E402
from bench.state import use_own_state_dir  # noqa: E402
from bench.wal import build_backlog, pgbench_init, set_archive_command  # noqa: E402
from bench.wal_drain import WALACK, compile_sources, drain_once  # noqa: E402
from tests.support.destinations import TestDestination, make_destination  # noqa: E402
from tests.support.postgres import (  # noqa: E402
    Cluster,
    make_cluster,
    pgvault_for_postgres,
    world_dir,
)
from tests.support.wal import stop_pushers  # noqa: E402

GOAL = 1.10  # issue 16: encrypted at most 10% slower
#: plain, a passphrase's key file, a recipient's key file (restored with the identity)
KINDS = ["plain", "enc", "id"]
LABELS = {"enc": "passphrase", "id": "identity"}


def backup(cluster: Cluster, dest: TestDestination, data: str, jobs: int) -> tuple[float, Backup]:
    """One timed `pgvault --batch backup --zstd -J jobs` of server bench-<data>."""
    start = time.monotonic()
    result = subprocess.run(
        [
            *(PGVAULT, "--batch", "backup", "--immediate-checkpoint", "--zstd", "-J", str(jobs)),
            "--no-wal-check",  # the bench cluster does not archive WAL
            *(*cluster.conninfo_args(), *dest.cli_args, dest.url, f"bench-{data}"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **dest.env},
    )
    seconds = time.monotonic() - start
    if result.returncode != 0:
        raise RuntimeError(f"backup failed: {result.stderr}")
    return seconds, Backup(data, dest, "local dir", "zstd", result.stdout.strip(), [], 0)


def wal_drains(
    key_args: list[str], segments: int, rounds: int, archive_command: str, compression: str
) -> dict[str, list[float]]:
    """`wal-archive --async` drains of the same backlog to a plain and an encrypted server."""
    exe = WALACK if archive_command == "walack" else PGVAULT
    compile_sources(REPO)
    cluster = make_cluster(
        settings={
            "archive_mode": "on",
            "archive_command": "",
            "max_wal_size": "16GB",
            "checkpoint_timeout": "1h",
        },
    )
    dests = {data: make_destination("file", {}) for data in ("plain", "enc")}
    spools = {data: world_dir(f"pgvault-bench-spool-{data}-") for data in dests}
    seconds: dict[str, list[float]] = {"plain": [], "enc": []}
    try:
        enc = dests["enc"]
        init = [PGVAULT, "--batch", "keys", "init", *key_args, enc.url, "pg1"]
        subprocess.run(init, check=True, capture_output=True)
        # keys init ran as this user; the archiver (postgres) writes beside the key file.
        subprocess.run(["chmod", "-R", "a+rwX", enc.bucket], check=True)
        pgbench_init(cluster, 5)
        for round_ in range(rounds):
            for data in ["plain", "enc"] if round_ % 2 == 0 else ["enc", "plain"]:
                fast = ["--async", "--spool-dir", spools[data], "-J", "4"]
                fast += [] if compression == "none" else [f"--{compression}"]
                command = " ".join(
                    [exe, "--batch", "wal-archive", *fast, dests[data].url, "pg1", "%p"]
                )
                # A pusher left running (one the last archive_command started after the drain's
                # kill) stores the next backlog ahead of its drain: gone before it is written.
                set_archive_command(cluster, "")
                time.sleep(1.0)
                for spool in spools.values():
                    stop_pushers(spool, wait=30)
                build_backlog(cluster, segments)
                seconds[data].append(drain_once(cluster, command, segments, set_archive_command))
                print(f"wal round {round_ + 1}: {data} {seconds[data][-1]:.2f} s", flush=True)
        # WAL keeps its object names when encrypted: look at the files' age header instead.
        wals = [w for w in Path(enc.bucket).glob("pfx/pg1/wals/*/*") if w.name[0] != "."]
        if not wals or any(not w.read_bytes().startswith(b"age-encryption.org/v1") for w in wals):
            found = sorted(str(p) for p in Path(enc.bucket).rglob("*"))[:20]
            raise RuntimeError(f"the encrypted server's WAL is missing or not encrypted: {found}")
    finally:
        for spool in spools.values():
            stop_pushers(spool)
        cluster.drop()
        for dest in dests.values():
            dest.drop()
    return seconds


def _median_ratio(these: list[float], plain: list[float]) -> float:
    """The median over rounds of this round's time over the plain time of the same round."""
    return statistics.median(a / b for a, b in zip(these, plain, strict=True))


def backup_restore_rounds(
    scale: int, rounds: int, jobs: int, secrets: Path, key_args: list[str]
) -> dict[str, dict[str, list[float]]]:
    """Backup and restore of each kind of server, round by round: seconds by step and kind."""
    pgvault_bin = pgvault_for_postgres()
    dest = make_destination("file", {})
    identity = secrets / "identity"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True
    ).stdout.strip()
    # The cluster archives no WAL, so the restore must accept the gap (nothing is started).
    gap = ["--accept-wal-gap"]
    flags: dict[str, list[str]] = {
        "plain": gap,
        "enc": [*gap, *key_args],
        "id": [*gap, "--identity-file", str(identity)],
    }
    times: dict[str, dict[str, list[float]]] = {
        step: {data: [] for data in KINDS} for step in ("backup", "restore")
    }
    cluster = build_cluster(scale)
    try:
        for data, init in (("enc", key_args), ("id", ["--encrypt-to", recipient])):
            subprocess.run(
                [
                    PGVAULT,
                    "--batch",
                    "keys",
                    "init",
                    *init,
                    *dest.cli_args,
                    dest.url,
                    f"bench-{data}",
                ],
                check=True,
                capture_output=True,
                env={**os.environ, **dest.env},
            )
        for round_ in range(rounds):
            order = KINDS[round_ % 3 :] + KINDS[: round_ % 3]
            made: dict[str, Backup] = {}
            for data in order:
                seconds, made[data] = backup(cluster, dest, data, jobs)
                times["backup"][data].append(seconds)
            warm(made["plain"])  # the tar size the restores are checked against
            for data in ("enc", "id"):
                made[data].tar_bytes = made["plain"].tar_bytes
            for data in order:
                seconds, _ = run_restore(made[data], pgvault_bin, *flags[data])
                times["restore"][data].append(seconds)
            print(
                f"round {round_ + 1} ({order[0]} first): "
                + ", ".join(
                    f"{step} {d} {times[step][d][-1]:.2f} s" for step in times for d in order
                ),
                flush=True,
            )
    finally:
        cluster.drop()
        dest.drop()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--segments", type=int, default=16, help="WAL backlog; 0: no WAL drain")
    parser.add_argument(
        "--archive-command",
        choices=["walack", "pgvault"],
        default="walack",
        help="the drain's archive_command: tui/walack.py (the README's, default) or pgvault",
    )
    parser.add_argument("--wal-only", action="store_true", help="only the WAL drain")
    parser.add_argument(
        "--wal-compression", choices=["none", "zstd", "lz4"], default="none", help="both drains'"
    )
    args = parser.parse_args()
    use_own_state_dir()  # its jobs never land in the operator's state

    secrets = Path(tempfile.mkdtemp(prefix="pgvault-bench-enc-"))
    passfile = secrets / "pass"
    passfile.write_text(os.urandom(16).hex() + "\n")  # a fresh secret per run
    passfile.chmod(0o600)
    key_args = ["--encryption-passphrase-file", str(passfile)]
    try:
        times = (
            {}
            if args.wal_only
            else backup_restore_rounds(args.scale, args.rounds, args.jobs, secrets, key_args)
        )
        wal = (
            wal_drains(
                key_args, args.segments, args.rounds, args.archive_command, args.wal_compression
            )
            if args.segments
            else None
        )
    finally:
        shutil.rmtree(secrets, ignore_errors=True)
    setup = "WAL only" if args.wal_only else f"pgbench scale {args.scale}, zstd, -J {args.jobs}"
    print(
        f"\n{setup}, {args.rounds} rounds; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n"
        "best: the best time of each; ratio: the median of the rounds' own ratios (each round "
        "runs all kinds back to back, so a slow moment of the machine falls on one round)\n"
    )
    print("| step | keys | plain s, best | encrypted s, best | ratio, median | goal | met |")
    print("|---|---|---:|---:|---:|---|---|")
    for step, runs in times.items():
        for data in ("enc", "id"):
            ratio = _median_ratio(runs[data], runs["plain"])
            met = "yes" if ratio <= GOAL else "no"
            print(
                f"| {step} | {LABELS[data]} | {min(runs['plain']):.2f} | {min(runs[data]):.2f} "
                f"| {ratio:.2f} | <= {GOAL:.2f} | {met} |"
            )
    if wal is None:
        print("| WAL fast path | passphrase | - | - | - | >= 0.9x rate | not measured |")
    else:
        # encrypted rate / plain rate over the same segments
        rate = 1 / _median_ratio(wal["enc"], wal["plain"])
        met = "yes" if rate >= 0.9 else "no"
        print(
            f"| WAL drain, {args.segments} segments, {args.archive_command}, "
            f"{args.wal_compression} (rate) | passphrase "
            f"| {min(wal['plain']):.2f} | {min(wal['enc']):.2f} | {rate:.2f}x | >= 0.90x | {met} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
