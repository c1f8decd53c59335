"""Schedule evaluation for many instances: what the agent does on every tick.

    .venv/bin/python bench/protection.py [--instances 10000] [--runs 3]

For each schedule shape (the seed's three weekly slots in Europe/Berlin, a monthly slot on
the 31st, PT15M), compiles one schedule per instance and times, for all of them, the slot
due now (`due`, one catch-up) and the next slot (`next_after`). Prints the best of --runs
(the machine's cores are shared) as a markdown table; the issue's goal is under 1 s for
10,000 instances.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from core.protection.schedule import compile_schedule

SHAPES = {
    "weekly Sun/Wed/Fri 22:00 Berlin": (
        [
            "R/2021-08-15T22:00:00+00:00/P1W",
            "R/2021-08-18T22:00:00+00:00/P1W",
            "R/2021-08-20T22:00:00+00:00/P1W",
        ],
        "Europe/Berlin",
    ),
    "monthly on the 31st 02:30 Berlin": (["R/2021-01-31T02:30:00/P1M"], "Europe/Berlin"),
    "every 15 minutes": (["R/2021-01-01T00:00:00Z/PT15M"], None),
    "cron 30 2 * * * Berlin": (["cron:30 2 * * *"], "Europe/Berlin"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    now = datetime(2026, 12, 3, 15, 7, tzinfo=UTC)
    since = datetime(2026, 12, 1, tzinfo=UTC)
    print(f"| schedule | {args.instances} instances: due + next_after (best of {args.runs}) |")
    print("|---|---|")
    for name, (intervals, zone) in SHAPES.items():
        schedules = [compile_schedule(intervals, zone) for _ in range(args.instances)]
        best = float("inf")
        for _ in range(args.runs):
            start = time.perf_counter()
            for schedule in schedules:
                schedule.due(since, now)
                schedule.next_after(now)
            best = min(best, time.perf_counter() - start)
        print(f"| {name} | {best:.3f} s |")


if __name__ == "__main__":
    main()
