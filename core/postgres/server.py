"""Starting, stopping and waiting for a PostgreSQL server on a data directory.

pg_ctl's commands are built here once; who runs them (the data directory's owner, through
`run_as` or the demo's `runuser`) is the caller's `Runner`, because PostgreSQL refuses to
run as root and each caller reaches the server's OS user its own way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

#: runs one command (argv, timeout in seconds) as the server's OS user
Runner = Callable[[list[str], float], subprocess.CompletedProcess[str]]
T = TypeVar("T")

POLL_INTERVAL = 0.5


class ServerNotReady(Exception):
    """The server was not ready within the time given."""


class ServerStopped(Exception):
    """The server stopped while it was waited for."""


def free_port() -> int:
    """A TCP port nothing listens on now (on 127.0.0.1)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def postmaster_pid(data: str) -> int | None:
    """The pid postmaster.pid records, or None when there is none."""
    try:
        first = Path(data, "postmaster.pid").read_text().split("\n", 1)[0]
        return int(first)
    except (OSError, ValueError):
        return None


def is_running(data: str) -> bool:
    """Whether the postmaster of this data directory is alive."""
    pid = postmaster_pid(data)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def running_postmasters() -> dict[str, int]:
    """Data directory -> postmaster PID of every PostgreSQL server this user can see running
    here (a postmaster works in its data directory, whose postmaster.pid names it)."""
    found: dict[str, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if Path(entry.path, "comm").read_text().strip() not in ("postgres", "postmaster"):
                continue
            data = os.readlink(os.path.join(entry.path, "cwd"))
        except OSError:  # gone meanwhile, or another user's
            continue
        if postmaster_pid(data) == int(entry.name) and not _zombie(int(entry.name)):
            found[os.path.realpath(data)] = int(entry.name)
    return found


def tablespace_locations(data: str) -> dict[str, str]:
    """Real location -> tablespace OID of each pg_tblspc link of a data directory."""
    links = os.path.join(data, "pg_tblspc")
    try:
        entries = list(os.scandir(links))
    except OSError:
        return {}
    return {os.path.realpath(e.path): e.name for e in entries if e.is_symlink()}


def _zombie(pid: int) -> bool:
    """An exited process its parent has not reaped yet: signals reach it, but it holds no
    data directory any more (a stopped postmaster whose parent has not waited for it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    # pid (comm) state ...: comm may hold spaces and parentheses, the state follows the last )
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z"


def kill_postmaster(data: str, attempts: int = 100) -> None:
    """SIGQUIT the postmaster (an immediate shutdown) and wait up to attempts/10 s for it."""
    pid = postmaster_pid(data)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGQUIT)
    except OSError:
        return
    for _ in range(attempts):
        if not is_running(data):
            return
        time.sleep(0.1)


def run_as(
    argv: Sequence[str],
    owner: tuple[int, int],
    *,
    env: Mapping[str, str],
    cwd: str,
    timeout: float,
    groups: Sequence[int] = (),
) -> subprocess.CompletedProcess[str]:
    """Run argv as owner (uid, gid), switching only to another user; output captured."""
    uid, gid = owner
    other = uid != os.geteuid()
    return subprocess.run(  # noqa: S603 - argv built by the caller, no shell
        list(argv),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(env),
        timeout=timeout,
        user=uid if other else None,
        group=gid if other else None,
        extra_groups=list(groups) if other else None,
        check=False,
    )


def log_tail(path: str, lines: int) -> str:
    """The last lines of a server log, indented for an error message."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read().splitlines()
    except OSError:
        return "(no server log)"
    return "server log:\n    " + "\n    ".join(text[-lines:])


@dataclass(frozen=True)
class PgCtl:
    """pg_ctl for one data directory, each command run by `run`."""

    bindir: str
    data: str
    run: Runner

    def _argv(self, *args: str) -> list[str]:
        return [os.path.join(self.bindir, "pg_ctl"), "-D", self.data, *args]

    def start(self, log_file: str, wait: int, timeout: float) -> subprocess.CompletedProcess[str]:
        """Start the server and wait up to `wait` seconds for it to accept connections."""
        return self.run(self._argv("-l", log_file, "-w", "-t", str(wait), "start"), timeout)

    def stop(
        self, mode: str, timeout: float, wait: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Stop the server (mode fast or immediate) and wait for it to be gone."""
        limit = ["-t", str(wait)] if wait is not None else []
        return self.run(self._argv("-m", mode, "-w", *limit, "stop"), timeout)

    def status(self, timeout: float) -> subprocess.CompletedProcess[str]:
        """pg_ctl status: exit 0 while the server runs."""
        return self.run(self._argv("status"), timeout)

    def wait_for(
        self, probe: Callable[[], T | None], timeout: float, tick: Callable[[], None]
    ) -> T:
        """Poll `probe` until it returns a value; ServerNotReady, ServerStopped otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            tick()
            found = probe()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise ServerNotReady
            if self.status(timeout=60).returncode != 0:
                raise ServerStopped
            time.sleep(POLL_INTERVAL)


__all__ = [
    "PgCtl",
    "Runner",
    "ServerNotReady",
    "ServerStopped",
    "free_port",
    "is_running",
    "kill_postmaster",
    "log_tail",
    "postmaster_pid",
    "run_as",
]
