"""Where pgvault keeps things: XDG data (the default local destination) and state (jobs)."""

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
