"""Run the pgvault executable as an operator would, with a destination's environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

PGVAULT = str(Path(sys.executable).parent / "pgvault")


def pgvault(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`pgvault --batch ARGS...`; returns the completed process (never raises on exit codes)."""
    return subprocess.run(
        [PGVAULT, "--batch", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def spawn(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start `pgvault --batch ARGS...` in the background (to signal it mid-way)."""
    return subprocess.Popen(
        [PGVAULT, "--batch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
