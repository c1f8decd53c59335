"""A copy job as `jobs list` shows it: its target in DEST, phase "done" once it succeeded.

A synthetic backup is copied to another directory (the job ends in phase "done", as a
backup's and a restore's do) and once more after a WAL segment it needs went missing (the
job failed in "planning", where it stopped). Both list the target as their destination.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.support.catalog import put_backup, put_wal, take_object, wal_key
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination

SERVER = "pg1"
WAL = "000000010000000000000002"


def test_a_copy_job_lists_its_target_and_ends_done(
    make_dest: Callable[..., TestDestination], job_store_dir: str
) -> None:
    local, other, third = make_dest("file"), make_dest("file"), make_dest("file")
    put_backup(local, "20260102T000000", begin=WAL, end=WAL)
    put_wal(local, [WAL])
    assert pgvault("copy", local.url, SERVER, "latest", "--to", other.url).returncode == 0
    take_object(local, wal_key(local, WAL))
    assert pgvault("copy", local.url, SERVER, "latest", "--to", third.url).returncode == 1

    listed = pgvault("jobs", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    jobs = data["jobs"] if isinstance(data, dict) else data
    ours = (other.url, third.url)  # the session's job store holds other tests' jobs too
    copies = sorted(
        (j for j in jobs if j["kind"] == "copy" and j["destination"] in ours),
        key=lambda j: j["id"],
    )
    assert [(j["state"], j["phase"]) for j in copies] == [
        ("succeeded", "done"),
        ("failed", "planning"),
    ], copies
    assert [j["destination"] for j in copies] == list(ours)
    text = pgvault("jobs", "list").stdout.splitlines()
    assert text[0].split()[-1] == "DEST"
    assert {line.split()[-1] for line in text[1:]} >= set(ours)
    assert local.url not in pgvault("jobs", "list").stdout
