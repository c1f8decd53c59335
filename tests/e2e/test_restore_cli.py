"""`pgvault --batch restore` refusals: one line on stderr and the seeds' exit codes."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.emulators import free_port
from tests.support.fakebackup import FakeBackup
from tests.support.postgres import world_dir
from tests.support.wal import pgvault_run


@pytest.fixture
def local(make_dest: Callable[..., TestDestination]) -> TestDestination:
    dest = make_dest("file")
    FakeBackup("20260101T000000").write(dest.url.removeprefix("file://"), "pg")
    return dest


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--snapshot-recovery-instance", "vm1", "--tablespace", "t:/x"], "cannot relocate"),
        (["--snapshot-recovery-instance", "vm1", "--delta"], "snapshot recovery"),
        (["--aws-region", "us-east-1"], "for snapshot recovery"),
        (["--gcp-zone", "z"], "for snapshot recovery"),
        (["--azure-resource-group", "rg"], "for snapshot recovery"),
        (["--snapshot-recovery-instance", "vm1", "--gcp-zone", "z", "--aws-region", "x"], "clouds"),
        (["--sse-customer-key", "file:///k"], "SSE-C"),
        (["--target-action", "promote"], "needs a recovery target"),
        (["--target-time", "2026-01-01", "--target-lsn", "0/1"], "not allowed with"),
        (["--target-name", "x", "--target-exclusive"], "--target-exclusive applies"),
        (["--target-time", "last tuesday"], "invalid target time"),
        (["--tablespace", "nocolon"], "NAME:LOCATION"),
        (["--wal-credentials-via", "clipboard"], "invalid choice"),
        (["--pgvault-command", "relative/pgvault"], "absolute path"),
    ],
)
def test_bad_input_exits_3_with_one_line(
    local: TestDestination, tmp_path: Path, flags: list[str], message: str
) -> None:
    result = pgvault("restore", *flags, local.url, "pg", "latest", str(tmp_path / "data"))
    assert result.returncode == 3, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "data").exists()


def test_missing_backups_fail_with_1_and_unreachable_stores_with_2(
    local: TestDestination, tmp_path: Path, make_dest: Callable[..., TestDestination]
) -> None:
    target = str(tmp_path / "data")
    result = pgvault("restore", local.url, "pg", "20250101T000000", target)
    assert result.returncode == 1 and "not found" in result.stderr
    result = pgvault("restore", local.url, "pg", "nightly", target)
    assert result.returncode == 1 and "no backup matches 'nightly'" in result.stderr
    result = pgvault("restore", local.url, "pg", "auto", target, "--target-lsn", "0/1")
    assert result.returncode == 1 and "ended before 0/1" in result.stderr
    missing = make_dest("s3", create=False)
    result = pgvault(
        "restore", *missing.cli_args, missing.url, "pg", "latest", target, env=missing.env
    )
    assert result.returncode == 1, result.stderr
    dead = f"http://127.0.0.1:{free_port()}"
    s3 = make_dest("s3")
    result = pgvault("restore", "--endpoint-url", dead, s3.url, "pg", "latest", target, env=s3.env)
    assert result.returncode == 2, result.stderr
    assert pgvault("restore", "-t", local.url, "pg", "latest", target).returncode == 0
    assert not os.path.exists(target)


def test_a_missing_local_source_is_named_missing_not_a_parent_to_chown(pgvault_bin: str) -> None:
    """As postgres, under a root-owned parent it cannot write: restore only reads, so the
    missing directory is what is wrong (exit 1, as for any missing source), not /tmp's owner."""
    parent = tempfile.mkdtemp(prefix="pgvault-root-owned-", dir="/tmp")
    place = world_dir("pgvault-restore-")  # the target and job store postgres can write
    env = {"PGVAULT_STATE_DIR": os.path.join(place, "state")}
    try:
        os.chmod(parent, 0o755)
        missing = os.path.join(parent, "missing", "backups")
        target = os.path.join(place, "data")
        args = ("restore", f"file://{missing}", "pg", "latest", target)
        for as_pg in (True, False):
            result = pgvault_run(pgvault_bin, *args, env=env, as_pg=as_pg)
            assert result.returncode == 1, result.stderr
            assert result.stderr.strip().endswith(f"directory {missing} does not exist")
            assert result.stderr.count("\n") == 1 and "chown" not in result.stderr
        assert os.listdir(parent) == [] and not os.path.exists(target)
        # A source postgres can read but not write is read (its catalog is empty here).
        os.makedirs(missing)
        result = pgvault_run(pgvault_bin, *args, env=env, as_pg=True)
        assert result.returncode == 1 and "has no backups" in result.stderr, result.stderr
    finally:
        shutil.rmtree(parent)
        shutil.rmtree(place)


def test_refusals_record_no_job(local: TestDestination, tmp_path: Path) -> None:
    env = {"PGVAULT_STATE_DIR": str(tmp_path / "state")}
    data = tmp_path / "data"
    data.mkdir()
    (data / "precious").write_text("keep me")
    result = pgvault("restore", local.url, "pg", "latest", str(data), env=env)
    assert result.returncode == 3 and f"{data} is not empty" in result.stderr
    inside = ["--wal-restore-dir", str(tmp_path / "fresh" / "wal")]
    result = pgvault(
        "restore", *inside, local.url, "pg", "latest", str(tmp_path / "fresh"), env=env
    )
    assert result.returncode == 3 and "outside the data directory" in result.stderr
    listing = pgvault("jobs", "list", "--format", "json", env=env)
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout) == []
    assert os.listdir(data) == ["precious"]
