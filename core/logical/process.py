"""Run pg_restore under a job's checkpoint: a cancel kills its whole process group."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence

from core.errors import OperationFailed

POLL = 0.2
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child before exec: killed when pgvault is (never left holding locks)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def run_tool(
    argv: Sequence[str],
    what: str,
    checkpoint: Callable[[], None],
    password: str | None = None,
) -> str:
    """The tool's stdout; OperationFailed with its last error lines when it fails."""
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(  # noqa: S603 - a PostgreSQL tool, arguments we built
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            process_group=0,
            preexec_fn=die_with_parent,  # one prctl call, no locks taken
        )
        try:
            while True:
                try:
                    proc.wait(timeout=POLL)
                    break
                except subprocess.TimeoutExpired:
                    checkpoint()
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", errors="replace")
        lines = [x.strip() for x in err.read().decode(errors="replace").splitlines() if x.strip()]
    if proc.returncode != 0:
        detail = "; ".join(lines[-3:]) or f"exit code {proc.returncode}"
        raise OperationFailed(f"{what} failed: {detail}")
    return stdout
