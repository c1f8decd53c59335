"""The scheduler agent at rest: CPU and memory of `pgvault --batch agent` with N instances.

    .venv/bin/python bench/agent.py [--instances 50] [--seconds 120] [--interval 30]

Creates a vault in a local directory with one daily policy (02:00 UTC) and N backup
instances (nothing is due while the bench runs, unless it crosses 02:00 UTC), then:
1. times `agent --once` (one full pass: registry, vault, every instance's runs and
   schedule, retention plan), best of three;
2. runs `agent --interval S` for --seconds and reads its /proc counters: CPU seconds used
   after its first pass, as a share of one core over the wall time, and peak RSS (VmHWM).
The issue's goals: idle CPU below 0.5% of one core with 50 instances, RSS below 100 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

PGVAULT = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "pgvault")
TICKS = os.sysconf("SC_CLK_TCK")
POLICY = {
    "datasourceTypes": ["Microsoft.DBforPostgreSQL/servers/databases"],
    "objectType": "BackupPolicy",
    "policyRules": [
        {
            "backupParameters": {"backupType": "Full", "objectType": "AzureBackupParams"},
            "dataStore": {"dataStoreType": "VaultStore", "objectType": "DataStoreInfoBase"},
            "name": "Daily",
            "objectType": "AzureBackupRule",
            "trigger": {
                "objectType": "ScheduleBasedTriggerContext",
                "schedule": {
                    "repeatingTimeIntervals": ["R/2026-01-01T02:00:00+00:00/P1D"],
                    "timeZone": "UTC",
                },
                "taggingCriteria": [
                    {"isDefault": True, "tagInfo": {"tagName": "Default"}, "taggingPriority": 99}
                ],
            },
        },
        {
            "isDefault": True,
            "lifecycles": [
                {
                    "deleteAfter": {"duration": "P30D", "objectType": "AbsoluteDeleteOption"},
                    "sourceDataStore": {
                        "dataStoreType": "VaultStore",
                        "objectType": "DataStoreInfoBase",
                    },
                    "targetDataStoreCopySettings": [],
                }
            ],
            "name": "Default",
            "objectType": "AzureRetentionRule",
        },
    ],
}


def pgvault(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PGVAULT, "--batch", *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"pgvault {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def set_up(work: Path, instances: int) -> dict[str, str]:
    env = {**os.environ, "PGVAULT_STATE_DIR": str(work / "state"), "BENCH_PW": "unused"}
    pgvault(env, "vault", "create", "bench", "--destination", f"file://{work / 'dest'}")
    (work / "policy.json").write_text(json.dumps(POLICY))
    pgvault(env, "policy", "create", "--vault", "bench", "--name", "daily",
            "--policy", str(work / "policy.json"))  # fmt: skip
    for n in range(instances):
        document = pgvault(
            env, "backup-instance", "initialize",
            "--datasource", f"host=/nonexistent port={5000 + n} user=postgres dbname=postgres",
            "--server-name", f"pg{n:03d}", "--policy", "daily",
            "--secret-store-type", "env", "--secret-store-uri", "BENCH_PW",
        )  # fmt: skip
        path = work / "instance.json"
        path.write_text(document)
        pgvault(env, "backup-instance", "create", "--vault", "bench",
                "--backup-instance", str(path))  # fmt: skip
    return env


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--interval", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pgvault-bench-agent-") as tmp:
        work = Path(tmp)
        env = set_up(work, args.instances)
        passes = []
        for _ in range(3):
            start = time.perf_counter()
            pgvault(env, "agent", "--once")
            passes.append(time.perf_counter() - start)
        agent = subprocess.Popen(
            [PGVAULT, "--batch", "agent", "--interval", str(args.interval)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(min(10.0, args.interval / 2))  # start-up and the first pass
            cpu0, wall0 = cpu_seconds(agent.pid), time.monotonic()
            time.sleep(args.seconds)
            cpu1, wall1 = cpu_seconds(agent.pid), time.monotonic()
            rss = peak_rss_mb(agent.pid)
        finally:
            agent.terminate()
            agent.wait()
    share = 100 * (cpu1 - cpu0) / (wall1 - wall0)
    print(f"| {args.instances} instances | value | goal |")
    print("|---|---:|---:|")
    print(f"| `agent --once` (process start + one pass), best of 3 | {min(passes):.2f} s | |")
    print(f"| idle CPU, `--interval {args.interval}`, {args.seconds:.0f} s | {share:.2f}% "
          "of one core | < 0.5% |")  # fmt: skip
    print(f"| peak RSS | {rss:.1f} MB | < 100 MB |")


if __name__ == "__main__":
    main()
