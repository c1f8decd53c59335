"""Operators' own keys: `$XDG_CONFIG_HOME/pgvault/keymap.toml` maps binding ids to keys.

    # keymap.toml: every binding id is listed by `?` (help) in the console
    [keys]
    "job.pause" = "space"
    "quit" = "q,ctrl+x"

Keys that tmux, SSH or a terminal eat can be moved this way (Textual's `set_keymap`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path


def keymap_path(explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "pgvault" / "keymap.toml"


def load_keymap(explicit: str | None = None) -> tuple[dict[str, str], str | None]:
    """(binding id -> keys, None) or ({}, a one-line error); no file is no keymap."""
    path = keymap_path(explicit)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        return {}, f"keymap {path}: {exc.strerror or exc}"
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return {}, f"keymap {path}: {exc}"
    keys = document.get("keys", {})
    if not isinstance(keys, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in keys.items()
    ):
        return {}, f'keymap {path}: [keys] must map binding ids to key names, e.g. "quit" = "q"'
    return {k: v.strip() for k, v in keys.items()}, None
