"""What a new operator tripped over in the first hour (issue 21), through the real executable.

Each case ran wrong before: `-t` created a missing directory, a mistyped server read as "no
backups", the console opened on a batch command, and the faces disagreed on sizes and
versions.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from core.units import format_size
from tests.support.catalog import SERVER, archived_server
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.jobs import PGVAULT
from tests.support.postgres import Cluster


@pytest.mark.parametrize("command", ["backup", "wal-archive", "backup-list", "restore"])
def test_dash_t_on_a_missing_directory_creates_nothing_and_exits_1(
    tmp_path: Path, command: str
) -> None:
    missing = tmp_path / "missing" / "dir"
    extra = ["latest", str(tmp_path / "restored")] if command == "restore" else []
    result = pgvault(command, "-t", f"file://{missing}", "pg1", *extra)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"directory {missing} does not exist" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not missing.exists() and not missing.parent.exists()
    (tmp_path / "there").mkdir()
    assert pgvault(command, "-t", f"file://{tmp_path / 'there'}", "pg1", *extra).returncode == 0


def test_a_batch_command_without_batch_says_what_was_meant(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    for argv, meant in (
        (["backup-list", url, "pg1"], f"pgvault --batch backup-list {url} pg1"),
        (
            ["--state-dir", str(tmp_path), "jobs", "list"],
            f"pgvault --state-dir {tmp_path} --batch jobs list",
        ),
    ):
        result = subprocess.run(
            [PGVAULT, *argv], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
        assert result.returncode == 3, result.stdout + result.stderr
        assert f"did you mean {meant}" in result.stderr and result.stdout == ""


def test_unknown_servers_are_named_and_sizes_and_versions_read_alike(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    tmp_path: Path,
) -> None:
    dest = make_dest("file")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    server.cluster.sql("create table t as select g as id from generate_series(1, 50000) g")
    backed = pgvault(
        "backup",
        "-v",
        "--immediate-checkpoint",
        *server.cluster.conninfo_args(),
        dest.url,
        SERVER,
    )
    assert backed.returncode == 0, backed.stderr
    backup_id = backed.stdout.strip()

    # The summary's stored size is backup-list's (every object of the backup), to the digit.
    listed = json.loads(server.run("backup-list", "--format", "json").stdout)
    stored = listed["backups_list"][0]["pgvault"]["stored_size"]
    said = re.search(r"([\d.]+) MiB stored", backed.stderr)
    assert said, backed.stderr
    assert f"{said.group(1)} MiB" == format_size(stored)
    table = server.run("backup-list").stdout
    assert format_size(stored) in table

    # backup-show names the release as PostgreSQL does.
    shown = server.run("backup-show", backup_id).stdout
    number = int(server.cluster.one("show server_version_num"))
    release = f"{number // 10000}.{number % 10000}"  # 150018 is 15.18
    assert re.search(rf"PostgreSQL version\s*: {re.escape(release)}\n", shown), shown

    # A mistyped server: listed as absent, with the servers that are there.
    wrong = pgvault("backup-list", dest.url, "pg2")
    assert wrong.returncode == 1
    assert wrong.stderr == (
        f"pgvault backup-list: error: server pg2 has no backups in {dest.url}; "
        f"the servers there: {SERVER}\n"
    )
    target = tmp_path / "restored"
    restore = pgvault("restore", dest.url, "pg2", "latest", str(target))
    assert restore.returncode == 1
    assert "server pg2 has no backups" in restore.stderr and f"there: {SERVER}" in restore.stderr
    assert "is DONE" not in restore.stderr and not target.exists()
    # --port: written into the restored configuration, and said in the next: line.
    restored = tmp_path / "restored-here"
    done = pgvault("restore", "-v", "--port", "54329", dest.url, SERVER, backup_id, str(restored))
    assert done.returncode == 0, done.stderr
    next_line = next(line for line in done.stderr.splitlines() if line.startswith("next:"))
    assert "it listens on port 54329" in next_line
    settings = (restored / "postgresql.auto.conf").read_text().splitlines()
    # PostgreSQL reads the last value: the one the restore appended.
    assert [line for line in settings if line.startswith("port ")][-1] == "port = '54329'"
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = pgvault("backup-list", f"file://{empty}", "pg1")
    assert nothing.returncode == 1 and "it holds no server" in nothing.stderr


def test_restore_refuses_a_port_that_is_not_one(tmp_path: Path) -> None:
    os.makedirs(tmp_path / "dest")
    result = pgvault("restore", "--port", "70000", f"file://{tmp_path}/dest", "pg1", "latest", "x")
    assert result.returncode == 3 and "not a TCP port" in result.stderr
