"""`policy simulate` against the number of slots: it should grow about linearly.

    .venv/bin/python bench/simulate.py [--days 1 2 4 8 14]

Simulates the default template with a one-minute schedule (1,440 slots a day, all kept
by its 3-month Default rule) for each --days, in process, and prints the seconds, the
events per second and each time's ratio to the previous one over the ratio of days
(about 1 when linear; the old plan over every live backup at every slot gave about 2x).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta

from core.protection.policy_read import parse_policy
from core.protection.simulate import simulate
from core.protection.template import default_policy_template


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, nargs="+", default=[1, 2, 4, 8, 14])
    args = parser.parse_args()
    document = default_policy_template()
    schedule = document["policyRules"][0]["trigger"]["schedule"]
    schedule["repeatingTimeIntervals"] = ["R/2026-12-01T00:00:00+00:00/PT1M"]
    policy = parse_policy(json.dumps(document))
    start = datetime(2026, 12, 1, tzinfo=UTC)
    previous: tuple[int, float] | None = None
    for days in args.days:
        began = time.perf_counter()
        events = simulate(policy, start, start + timedelta(days=days)).events
        seconds = time.perf_counter() - began
        growth = ""
        if previous is not None:
            growth = f"  growth/linear {(seconds / previous[1]) / (days / previous[0]):.2f}"
        print(
            f"{days:>4} days  {len(events):>7} events  {seconds:7.2f} s"
            f"  {len(events) / seconds:9.0f} events/s{growth}"
        )
        previous = (days, seconds)


if __name__ == "__main__":
    main()
