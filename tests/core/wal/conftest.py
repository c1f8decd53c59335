"""Real WAL written by PostgreSQL for the WAL tests, and a pg_wal directory of it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import world_dir
from tests.support.wal import WalSample, scratch_dirs, wal_sample

__all__ = ["pg_wal", "scratch_dirs", "wal_sample"]


@pytest.fixture
def pg_wal(wal_sample: WalSample) -> Iterator[str]:
    """A pg_wal with the sample's segments marked .ready, as PostgreSQL leaves them."""
    base = world_dir("pgvault-pgwal-")
    wal_dir = os.path.join(base, "pg_wal")
    os.makedirs(os.path.join(wal_dir, "archive_status"))
    for name in [*wal_sample.segments, wal_sample.backup_label]:
        shutil.copy(wal_sample.path(name), os.path.join(wal_dir, name))
        Path(wal_dir, "archive_status", f"{name}.ready").touch()
    yield wal_dir
    shutil.rmtree(base, ignore_errors=True)
