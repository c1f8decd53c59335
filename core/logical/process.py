"""Run pg_restore under a job's checkpoint: a cancel kills its whole process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence

from core.errors import OperationFailed

POLL = 0.2


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
            start_new_session=True,
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
