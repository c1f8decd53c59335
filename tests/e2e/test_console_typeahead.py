"""`/` or `:` and the words after it, typed in one burst, go into the filter or the
command palette (tmux, a real terminal).

Found in tmux: `send-keys '/pg1'` (what a fast typist or an SSH link delivers as one read)
paused the selected running job: the filter box took the focus on Textual's next turn,
after the already queued `p`, `g`, `1` had gone to the jobs view's bindings (p Pause,
g First, 1 Jobs). Pilot presses keys one turn apart, so only a real terminal shows it.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from core.jobs import JobState, JobStore
from tests.support.console import fill_store
from tests.support.jobs import PGVAULT, REPO
from tests.support.terminal import Terminal


def world(tmp_path: Path) -> dict[str, str]:
    return {
        "PGVAULT_STATE_DIR": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "PGVAULT_DEMO_DIR": str(tmp_path / "demo"),
        "TERM": "xterm-256color",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": REPO,
    }


def test_a_filter_typed_in_one_burst_filters_and_pauses_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ids = fill_store(state)  # the first row is a running backup of pg-main (another host)
    terminal = Terminal(f"pgvault-typeahead-{os.getpid()}", [PGVAULT], world(tmp_path))
    try:
        terminal.wait_for(" running ", "p Pause", timeout=60)
        # One send-keys: the four characters reach the console in one read.
        subprocess.run(["tmux", "send-keys", "-t", terminal.name, "/pg-main"], check=True)
        terminal.wait_for("f10 Quit", timeout=20)  # the filter box has the keys
        time.sleep(1)
        with JobStore.open(str(state)) as store:
            job = store.get(ids[0])
        assert job.state is JobState.RUNNING, job  # not pause_requested by the `p`
        lines = terminal.screen().rstrip("\n").splitlines()
        assert lines[-2].strip() == "pg-main", lines[-3:]  # the box above the key line
        terminal.keys("Escape", "Escape", "q")
        terminal.wait_for("EXITED=0", timeout=20)
    finally:
        terminal.close()


def test_a_command_typed_with_the_colon_reaches_the_palette(tmp_path: Path) -> None:
    """`:pause` in one read: the palette opened with an empty search (the keys typed with
    `:` went to the view behind it and were lost); now it searches for them."""
    state = tmp_path / "state"
    ids = fill_store(state)
    terminal = Terminal(f"pgvault-palette-{os.getpid()}", [PGVAULT], world(tmp_path))
    try:
        terminal.wait_for(" running ", "p Pause", timeout=60)
        subprocess.run(["tmux", "send-keys", "-t", terminal.name, ":pause"], check=True)
        terminal.wait_for(f"Pause job {ids[0]}: backup pg-main", timeout=20)
        with JobStore.open(str(state)) as store:
            assert store.get(ids[0]).state is JobState.RUNNING
        terminal.keys("Escape", "q")
        terminal.wait_for("EXITED=0", timeout=20)
    finally:
        terminal.close()


def test_fields_typed_with_n_land_in_the_new_backup_form(tmp_path: Path) -> None:
    """`nlocalhost<tab>5433` in one read: the form's first empty field gets `localhost` and
    the next one `5433`. The old console lost what came with `n` (handed to the view behind
    the form, or to the form before it had a field focused) and put what followed a `tab`
    in the field the `tab` left."""
    fill_store(tmp_path / "state")  # the newest backup job prefills Server and Destination
    terminal = Terminal(f"pgvault-newform-{os.getpid()}", [PGVAULT], world(tmp_path))
    try:
        terminal.wait_for(" running ", "n New backup", timeout=60)
        subprocess.run(
            ["tmux", "send-keys", "-t", terminal.name, "nlocalhost", "Tab", "5433"], check=True
        )
        screen = terminal.wait_for("New backup", "Start backup", timeout=20)
        time.sleep(1)
        screen = terminal.screen()
        assert "│ Host            localhost " in screen, screen
        assert "│ Port            5433 " in screen, screen
        terminal.keys("Escape", "q")
        terminal.wait_for("EXITED=0", timeout=20)
    finally:
        terminal.close()


def test_a_path_typed_with_r_lands_in_the_restore_forms_into(tmp_path: Path) -> None:
    """`r/srv/x` in one read on the catalog's DONE backup: the restore form opens with
    `/srv/x` in Into. The old console handed `/srv/x` to the catalog behind the form (the
    `/` opened its filter) before the form opened."""
    from tests.support.console import write_catalog

    write_catalog(tmp_path / "catalog")
    url = f"file://{tmp_path / 'catalog'}"
    terminal = Terminal(f"pgvault-restoreform-{os.getpid()}", [PGVAULT, url], world(tmp_path))
    try:
        terminal.wait_for("n New backup", timeout=60)
        terminal.keys("2")
        terminal.wait_for("20260313T020000", timeout=30)
        terminal.keys("Tab", "k", "k", "k")  # the backups table, its first row
        time.sleep(1)
        # the rows are newest first: 14 (failed), 13 (done), 12 (done)
        terminal.keys("j")
        time.sleep(1)
        subprocess.run(["tmux", "send-keys", "-t", terminal.name, "r/srv/x"], check=True)
        screen = terminal.wait_for("Start restore", timeout=20)
        time.sleep(1)
        screen = terminal.screen()
        assert "│ Into" in screen and "/srv/x" in screen, screen
        assert "20260313T020000" in screen, screen
        terminal.keys("Escape", "q")
        terminal.wait_for("EXITED=0", timeout=20)
    finally:
        terminal.close()


def test_keys_typed_with_enter_reach_the_job_detail(tmp_path: Path) -> None:
    """`enter j w` in one read on the jobs view's first job: its detail opens and takes
    `w` (the chart's window goes from 5 to 15 minutes). The old console posted enter's
    request: `j` moved the jobs table's cursor first, and the detail opened on the job
    below, its window untouched."""
    ids = fill_store(tmp_path / "state")
    terminal = Terminal(f"pgvault-detail-{os.getpid()}", [PGVAULT], world(tmp_path))
    try:
        terminal.wait_for(" running ", "p Pause", timeout=60)
        time.sleep(1)
        subprocess.run(["tmux", "send-keys", "-t", terminal.name, "Enter", "j", "w"], check=True)
        screen = terminal.wait_for("last 15m", timeout=20)
        assert f"job {ids[0]} " in screen and f"job {ids[1]} " not in screen, screen
        terminal.keys("Escape", "q")
        terminal.wait_for("EXITED=0", timeout=20)
    finally:
        terminal.close()
