"""A bench's own job store: a temporary state directory, never the operator's.

Every pgvault a bench runs (its commands, the job workers they start, and the
archive_command of the clusters it makes, which inherit the environment) records its jobs
under PGVAULT_STATE_DIR. Unset, that is the operator's own `~/.local/state/pgvault` (and
the postgres user's), which a bench would fill with thousands of jobs. `use_own_state_dir()`
at the start of a bench's main() points it at a new temporary directory, removed at exit
(a SIGTERM included).
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import tempfile
from pathlib import Path

from core.paths import STATE_ENV

_made: list[Path] = []


def use_own_state_dir() -> Path:
    """A new state directory for this run (one per process), in PGVAULT_STATE_DIR."""
    if _made:
        return _made[0]
    path = Path(tempfile.mkdtemp(prefix="pgvault-bench-state-", dir="/tmp"))
    if os.geteuid() == 0:
        # archive_command runs as postgres: the store is postgres's, as README's shared
        # state directory (root's own files there are given to it).
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pass
        else:
            os.chown(path, user.pw_uid, user.pw_gid)
    os.environ[STATE_ENV] = str(path)
    _made.append(path)
    atexit.register(shutil.rmtree, path, True)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        # A bench stopped by kill still removes it (and runs its own finally blocks: the
        # clusters it made are dropped).
        signal.signal(signal.SIGTERM, _exit)
    return path


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


__all__ = ["use_own_state_dir"]
