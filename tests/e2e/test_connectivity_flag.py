"""`-t` on every command that has it, as barman-cloud's: 0 when the bucket answers, 1 when
it does not exist (and it is not created), 2 when the endpoint cannot be reached; one line."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.emulators import free_port

WAL = "000000010000000000000001"
BACKUP = "20260101T000000"

COMMANDS = {
    "backup": ["backup", "{url}", "pg1"],
    "restore": ["restore", "{url}", "pg1", "latest", "{out}"],
    "wal-archive": ["wal-archive", "{url}", "pg1"],
    "wal-restore": ["wal-restore", "{url}", "pg1", WAL, "{out}"],
    "check-wal-archive": ["check-wal-archive", "{url}", "pg1"],
    "backup-list": ["backup-list", "{url}", "pg1"],
    "backup-show": ["backup-show", "{url}", "pg1", BACKUP],
    "backup-keep": ["backup-keep", "--status", "{url}", "pg1", BACKUP],
    "backup-delete": ["backup-delete", "-b", BACKUP, "{url}", "pg1"],
    "verify": ["verify", "{url}", "pg1", BACKUP],
    "backup-rehydrate": ["backup-rehydrate", "{url}", "pg1", BACKUP],
}


def run_test_flag(
    command: str, dest: TestDestination, tmp_path: Path, endpoint: str | None = None
) -> subprocess.CompletedProcess[str]:
    name, *rest = COMMANDS[command]
    values = {"url": dest.url, "out": str(tmp_path / "out")}
    cli = list(dest.cli_args)
    if endpoint is not None:
        cli[cli.index("--endpoint-url") + 1] = endpoint
    return pgvault(name, "-t", *cli, *[a.format(**values) for a in rest], env=dest.env)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_dash_t_answers_0_1_or_2_and_touches_nothing(
    command: str, make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    present = make_dest("s3")
    result = run_test_flag(command, present, tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    with present.store() as store:
        assert list(store.list_objects("")) == []
    assert not (tmp_path / "out").exists()

    missing = make_dest("s3", create=False)
    result = run_test_flag(command, missing, tmp_path)
    assert result.returncode == 1 and "does not exist" in result.stderr, result.stderr
    s3 = boto3.client("s3", endpoint_url=missing.cli_args[1], region_name="us-east-1")
    assert missing.bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]

    dead = run_test_flag(command, present, tmp_path, endpoint=f"http://127.0.0.1:{free_port()}")
    assert dead.returncode == 2, dead.stderr
    assert len(dead.stderr.strip().splitlines()) == 1 and "Traceback" not in dead.stderr
