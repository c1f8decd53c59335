"""A destination on a read-only file system is named as one, never an unexpected error.

The file system is real: a small tmpfs remounted read-only. Each command that writes to a
local destination (archive_command, a backup's connectivity test, a vault) exits 1
with one line that says the file system is read-only, and advises no chmod (none helps).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import pgvault
from tests.support.wal import WalSample

SERVER = "pg1"


@pytest.fixture
def read_only(small_disk: Callable[[str], str]) -> str:
    disk = small_disk("1m")
    subprocess.run(["mount", "-o", "remount,ro", disk], check=True)
    return disk


def _invocations(disk: str, wal: str) -> list[tuple[str, ...]]:
    below = f"file://{disk}/dest"  # to be created on the read-only file system
    return [
        ("wal-archive", below, SERVER, wal),
        ("wal-archive", f"file://{disk}", SERVER, wal),
        ("backup", "-t", f"file://{disk}", SERVER),
        ("vault", "create", "v1", "--destination", below),
    ]


def test_a_read_only_destination_is_named(
    read_only: str, wal_sample: WalSample, tmp_path: Path
) -> None:
    wal = wal_sample.path(wal_sample.segments[0])
    env = {"PGVAULT_STATE_DIR": str(tmp_path / "state")}
    for argv in _invocations(read_only, wal):
        done = pgvault(*argv, env=env)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1, (argv, done.stderr)
        assert "Traceback" not in done.stderr and "unexpected" not in done.stderr, done.stderr
        assert f"{read_only} is on a read-only file system" in lines[-1], (argv, done.stderr)
        assert "chmod" not in done.stderr, done.stderr
    assert os.listdir(read_only) == []
