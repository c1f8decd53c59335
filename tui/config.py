"""What a console session runs on: its job store, destinations, mode and clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: the top-level views, in key order: (mode, key, label)
VIEWS: tuple[tuple[str, str, str], ...] = (
    ("jobs", "1", "Jobs"),
    ("catalog", "2", "Catalog"),
    ("wal", "3", "WAL"),
    ("protection", "4", "Protection"),
)

#: actions that change something: hidden (not just disabled) with --read-only
MUTATING = frozenset(
    {
        "new_backup",
        "pause",
        "resume",
        "cancel",
        "retry",
        "verify",
        "delete",
        "restore",
        "stop_protection",
        "resume_protection",
        "repair_wal",
    }
)

#: seconds between job-store polls (three a second: live without costing the store anything)
POLL_INTERVAL = 0.33
#: seconds of aggregate bandwidth on the jobs view's sparkline
AGGREGATE_WINDOW = 120.0
#: ranged downloads in flight for a restore started from the console: the default of
#: `pgvault --batch restore -J` (tui.batch.restore.DEFAULT_JOBS), which the console may not import
RESTORE_JOBS = 4


@dataclass(frozen=True)
class ConsoleConfig:
    """Everything the app needs from its command line (and tests inject)."""

    state_dir: str | None = None  # --state-dir (None: $PGVAULT_STATE_DIR or the XDG default)
    destinations: tuple[str, ...] = ()  # catalog URLs as given (may hold credentials)
    read_only: bool = False
    demo: bool = False  # start (or reuse) the demo cluster and its backup job
    clock: Callable[[], float] = field(default=time.time)
    poll_interval: float = POLL_INTERVAL
    keymap_file: str | None = None  # None: $XDG_CONFIG_HOME/pgvault/keymap.toml
    #: mark dead jobs failed as `jobs` commands do (tests with fixed rows may turn it off)
    reap: bool = True
    #: a Textual theme name (None: Textual's default)
    theme: str | None = None
