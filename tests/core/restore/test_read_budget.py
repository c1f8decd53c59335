"""The restore's read budget: ranges held ahead of the extraction stay within -J."""

from __future__ import annotations

import os
from pathlib import Path

from core.restore.streams import Budget
from core.storage import PrefetchingReader, StoreConfig, open_store
from core.urls import parse_location

MiB = 1024 * 1024


def test_ranges_requested_ahead_stay_within_jobs_across_archives(tmp_path: Path) -> None:
    """One archive may use every -J range ahead of it; two archives share them, one each:
    every range waiting is held in memory, so they are what -J costs."""
    data = os.urandom(8 * MiB)
    with open_store(parse_location(f"file://{tmp_path}"), StoreConfig()) as store:
        for key in ("a.tar", "b.tar"):
            store.put_bytes(key, data)
        budget = Budget(jobs=2)

        def reader(key: str) -> PrefetchingReader:
            opened = store.open_prefetching_reader(
                key, size=len(data), part_size=MiB, jobs=budget.jobs, limit=budget.semaphore
            )
            budget.add(opened)
            return opened

        first = reader("a.tar")
        got = [first.read_chunk()]
        assert first.ranges_ahead == 2
        second = reader("b.tar")
        for _ in range(3):
            got.append(first.read_chunk())
            second.read_chunk()
            assert first.ranges_ahead + second.ranges_ahead <= budget.jobs
        budget.remove(second)
        second.close()
        while chunk := first.read_chunk():
            got.append(chunk)
        first.close()
        assert b"".join(got) == data
