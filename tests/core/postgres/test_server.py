"""core.postgres.server on a real cluster: pg_ctl as the server's OS user, waits, liveness."""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from pathlib import Path

import pytest

from core.postgres.server import (
    PgCtl,
    ServerNotReady,
    ServerStopped,
    free_port,
    is_running,
    log_tail,
    postmaster_pid,
    run_as,
)
from tests.support.postgres import PG_USER, Cluster


def _ctl(cluster: Cluster) -> PgCtl:
    user = pwd.getpwnam(PG_USER) if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}

    def run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return run_as(argv, (user.pw_uid, user.pw_gid), env=env, cwd="/", timeout=timeout)

    return PgCtl(cluster.bindir, cluster.data, run)


def test_stop_wait_and_start_a_running_cluster(pg: Cluster) -> None:
    ctl = _ctl(pg)
    assert is_running(pg.data)
    assert postmaster_pid(pg.data) is not None
    assert ctl.status(timeout=60).returncode == 0
    ticks: list[int] = []
    assert ctl.wait_for(lambda: "ready", timeout=10, tick=lambda: ticks.append(1)) == "ready"
    assert ticks == [1]
    with pytest.raises(ServerNotReady):
        ctl.wait_for(lambda: None, timeout=0, tick=lambda: None)

    assert ctl.stop("immediate", timeout=120, wait=60).returncode == 0
    assert not is_running(pg.data)
    assert postmaster_pid(pg.data) is None
    with pytest.raises(ServerStopped):
        ctl.wait_for(lambda: None, timeout=60, tick=lambda: None)

    started = ctl.start(pg.log, wait=120, timeout=150)
    assert started.returncode == 0, started.stderr
    assert is_running(pg.data)
    assert "server log:" in log_tail(pg.log, 5)


def test_free_port_and_a_missing_log(tmp_path: Path) -> None:
    assert 0 < free_port() < 65536
    assert log_tail(str(tmp_path / "absent.log"), 5) == "(no server log)"


def test_a_postmaster_that_exited_but_was_not_reaped_is_not_running(tmp_path: Path) -> None:
    # A snapshot's postmaster.pid can name a stopped postmaster its parent has not waited
    # for yet: a zombie answers kill(pid, 0) but holds no data directory.
    child = subprocess.Popen(["true"])
    try:
        stat = Path(f"/proc/{child.pid}/stat")
        deadline = time.monotonic() + 10
        while b") Z " not in stat.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert b") Z " in stat.read_bytes()
        (tmp_path / "postmaster.pid").write_text(f"{child.pid}\n{tmp_path}\n")
        assert postmaster_pid(str(tmp_path)) == child.pid
        assert not is_running(str(tmp_path))
    finally:
        child.wait()
    (tmp_path / "postmaster.pid").write_text(f"{os.getpid()}\n{tmp_path}\n")
    assert is_running(str(tmp_path))  # a live process
