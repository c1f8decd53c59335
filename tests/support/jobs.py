"""Helpers for job-engine tests: the real `pgvault` executable, waiting, sources, byte counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from core.storage.local import PARTIAL

T = TypeVar("T")
PGVAULT = str(Path(sys.executable).parent / "pgvault")
REPO = str(Path(__file__).resolve().parents[2])


def pgvault(
    state_dir: str | os.PathLike[str],
    *args: str,
    check: bool = False,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `pgvault --state-dir DIR --batch ARGS` as an operator would, in its own process."""
    result = subprocess.run(
        [PGVAULT, "--state-dir", str(state_dir), "--batch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        # The engine's test kind lives in tests/: let the pgvault process import it.
        env={**os.environ, "PYTHONPATH": REPO, **(env or {})},
        cwd=REPO,
    )
    if check and result.returncode != 0:
        command = " ".join(args)
        raise AssertionError(
            f"pgvault {command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def show(state_dir: str | os.PathLike[str], job_id: int) -> dict[str, Any]:
    """`jobs show ID --format json` from a separate process."""
    out = pgvault(state_dir, "jobs", "show", str(job_id), "--format", "json", check=True)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def wait_for(
    probe: Callable[[], T | None], timeout: float = 30, interval: float = 0.05, what: str = ""
) -> T:
    """Poll until probe() returns something truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}")
        time.sleep(interval)


def make_source(path: str | os.PathLike[str], size: int) -> str:
    """A file of incompressible bytes."""
    with open(path, "wb") as fh:
        left = size
        while left:
            block = os.urandom(min(left, 4 * 1024 * 1024))
            fh.write(block)
            left -= len(block)
    return str(path)


def bytes_on_disk(directory: str | os.PathLike[str]) -> int:
    """Bytes written so far under a local destination: in-progress uploads count by the
    blocks they allocated (parts are written at their offsets into a sparse file)."""
    total = 0
    for root, _, files in os.walk(directory):
        for name in files:
            st = os.stat(os.path.join(root, name))
            total += st.st_blocks * 512 if name.endswith(PARTIAL) else st.st_size
    return total
