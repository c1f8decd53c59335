"""The delta restore's refusals and what it never keeps, on real directories and processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ExitCode, OperationFailed
from core.restore.delta import check_identity, self_checked
from core.restore.plan import check_not_running


def _pid_file(data: Path, pid: int) -> None:
    data.mkdir(exist_ok=True)
    (data / "postmaster.pid").write_text(f"{pid}\n{data}\n1700000000\n5432\n")


def test_a_live_postmaster_pid_is_refused_and_a_stale_one_is_not(tmp_path: Path) -> None:
    data = tmp_path / "data"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    _pid_file(data, int(gone.stdout))  # a crashed server's: its process is gone
    check_not_running(str(data))
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _pid_file(data, alive.pid)
        with pytest.raises(OperationFailed, match=f"PID {alive.pid}") as caught:
            check_not_running(str(data))
        assert caught.value.exit_code == ExitCode.FAILED
    finally:
        alive.kill()
        alive.wait()


def test_a_directory_that_is_no_cluster_is_refused_unless_forced(tmp_path: Path) -> None:
    check_identity(str(tmp_path), "B1", "42", force=False)  # empty: a plain restore
    (tmp_path / "precious").write_text("not PostgreSQL's")
    with pytest.raises(OperationFailed, match="holds no global/pg_control"):
        check_identity(str(tmp_path), "B1", "42", force=False)
    check_identity(str(tmp_path), "B1", "42", force=True)


def test_another_system_identifier_is_named(tmp_path: Path) -> None:
    (tmp_path / "global").mkdir()
    (tmp_path / "global" / "pg_control").write_bytes((7).to_bytes(8, "little") + bytes(8184))
    check_identity(str(tmp_path), "B1", "7", force=False)
    with pytest.raises(OperationFailed, match="belongs to system 7, backup B1 to system 42"):
        check_identity(str(tmp_path), "B1", "42", force=False)


@pytest.mark.parametrize(
    ("path", "never_kept"),
    [
        ("global/pg_control", True),
        ("global/pg_filenode.map", True),
        ("base/5/pg_filenode.map", True),
        ("pg_tblspc/16400/PG_15_202209061/16384/pg_filenode.map", True),
        ("pg_twophase/00000300", True),
        ("pg_logical/replorigin_checkpoint", True),
        ("base/5/1259", False),
        ("global/1262", False),
    ],
)
def test_files_that_carry_their_own_crc_are_never_kept(path: str, never_kept: bool) -> None:
    assert self_checked(path) is never_kept
