"""Where pgvault keeps things: XDG data (the default local destination) and state (jobs),
and who owns what it creates there.

`sudo pgvault --state-dir D` in a directory postgres owns (the state archive_command and the
console share) must not leave a root-owned 0600 jobs.db, workers/ or vaults.json that
postgres can no longer open: what root creates there is given to the directory's owner,
modes unchanged (owner-only; core.storage.local_owner is the destination's rule, whose
modes follow the root's). SQLite gives its -wal and -shm files the database file's owner.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_ENV = "PGVAULT_STATE_DIR"


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def data_dir() -> Path:
    """$XDG_DATA_HOME/pgvault (~/.local/share/pgvault)."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "pgvault"


def state_dir(explicit: str | None = None) -> Path:
    """--state-dir, else $PGVAULT_STATE_DIR, else $XDG_STATE_HOME/pgvault."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV]).expanduser().resolve()
    return _xdg("XDG_STATE_HOME", ".local/state") / "pgvault"


def default_destination() -> str:
    """The embedded default destination: a local directory under the XDG data directory."""
    return f"file://{data_dir() / 'backups'}"


def owner_for(directory: Path) -> tuple[int, int] | None:
    """The (uid, gid) a file root creates in `directory` takes; None when not running as
    root or the directory is root's own."""
    if os.geteuid() != 0:
        return None
    st = os.stat(directory)
    return None if st.st_uid == 0 else (st.st_uid, st.st_gid)


def adopt_fd(fd: int, directory: Path) -> None:
    """A file just created in `directory` given to the directory's owner."""
    owner = owner_for(directory)
    if owner is not None:
        os.fchown(fd, *owner)


def adopt_path(path: Path) -> None:
    """A directory just created given to its parent's owner."""
    owner = owner_for(path.parent)
    if owner is not None:
        os.chown(path, *owner)
