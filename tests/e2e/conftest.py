"""Real WAL written by PostgreSQL for the end-to-end WAL tests; a private world for the demo."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from tests.support.jobs import PGVAULT
from tests.support.wal import scratch_dirs, wal_sample

__all__ = ["demo_world", "scratch_dirs", "wal_sample"]


@pytest.fixture
def demo_world() -> Iterator[dict[str, str]]:
    """An environment with private directories for the demo, the default destination, the
    state and the config; the demo is stopped and removed afterwards."""
    base = tempfile.mkdtemp(prefix="pgvault-demo-world-", dir="/tmp")
    os.chmod(base, 0o755)
    env = {
        "PGVAULT_DEMO_DIR": f"{base}/demo",
        "XDG_DATA_HOME": f"{base}/data",
        "XDG_CONFIG_HOME": f"{base}/config",
        "PGVAULT_STATE_DIR": f"{base}/state",
        "TERM": "xterm-256color",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
    }
    yield env
    subprocess.run(
        [PGVAULT, "--demo-stop"], env={**os.environ, **env}, capture_output=True, timeout=120
    )
    shutil.rmtree(base, ignore_errors=True)
