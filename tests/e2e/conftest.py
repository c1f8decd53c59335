"""Real WAL written by PostgreSQL for the end-to-end WAL tests; a private world for the demo;
small file systems for the tests of a full disk."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator

import pytest

from tests.support.jobs import PGVAULT
from tests.support.postgres import chown_tree, world_dir
from tests.support.wal import scratch_dirs, wal_sample

__all__ = ["demo_world", "scratch_dirs", "small_disk", "wal_sample"]


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


@pytest.fixture
def small_disk() -> Iterator[Callable[[str], str]]:
    """mount(size) -> a new tmpfs of that size owned by postgres; unmounted afterwards."""
    mounts: list[str] = []

    def mount(size: str) -> str:
        where = world_dir("pgvault-small-disk-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", where], check=True)
        chown_tree(where)
        os.chmod(where, 0o755)
        mounts.append(where)
        return where

    yield mount
    for where in mounts:
        subprocess.run(["umount", "-l", where], check=False)
        os.rmdir(where)
