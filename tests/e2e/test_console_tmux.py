"""The real `pgvault` executable in a real terminal (tmux, 80x24), read back from the screen.

`pgvault --demo` is what a newcomer runs first: a throwaway PostgreSQL (as the postgres user
when run as root), its WAL archived by pgvault, a backup job that a second later is on the
screen, pausable with p. The console quits with q and leaves the cluster and its job running.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from core.jobs import JobState, JobStore
from tests.support.jobs import PGVAULT
from tests.support.terminal import HEIGHT, WIDTH, Terminal


def test_the_demo_in_a_real_terminal(demo_world: dict[str, str]) -> None:
    terminal = Terminal(f"pgvault-demo-{os.getpid()}", [PGVAULT, "--demo"], demo_world)
    try:
        # The console opens at once; the views' tabs end the line until the demo's job shows
        # its counts there (tmux trims the blanks after the last tab).
        terminal.wait_for(" 1 Jobs ", " 2 Catalog ", timeout=60)
        # The selected job at the bottom, moving: its rate appears after the first samples.
        # Loading the demo's sample data takes from seconds to minutes on a busy machine.
        screen = terminal.wait_for("job 1 running", "MiB/s", "demo", "p Pause", timeout=300)
        lines = screen.splitlines()
        assert len(lines) <= HEIGHT and all(len(line) <= WIDTH for line in lines)

        terminal.keys("p")
        terminal.wait_for("paused", "p Resume", timeout=20)
        terminal.keys("p")
        terminal.wait_for("job 1 running", "p Pause", timeout=20)

        terminal.keys("enter")
        terminal.wait_for("on the wire, last 5m", "log", "esc Back", timeout=20)
        terminal.keys("Escape")
        terminal.wait_for("enter Open", timeout=10)

        terminal.keys("2")
        screen = terminal.wait_for("demo", "BACKUP", timeout=30)
        assert "STARTED" in screen or "DONE" in screen

        terminal.keys("3")
        terminal.wait_for("segments", "timeline 1", timeout=30)

        terminal.keys("?")
        terminal.wait_for("Help: WAL archive", "Everywhere", timeout=10)
        terminal.keys("Escape", "1", "q")
        # Quitting says that the demo's PostgreSQL runs on, and how to stop it.
        screen = terminal.wait_for("EXITED=0", "still running", timeout=20)
        assert "pgvault --demo-stop" in screen.replace("\n", ""), screen
    finally:
        terminal.close()

    # Quitting the console stopped neither the cluster nor its backup.
    status = subprocess.run(
        [PGVAULT, "--batch", "demo", "status"],
        env={**os.environ, **demo_world},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0 and "running" in status.stdout, status.stdout + status.stderr
    with JobStore.open(demo_world["PGVAULT_STATE_DIR"]) as store:
        job = store.get(1)
    assert job.state in (JobState.RUNNING, JobState.SUCCEEDED), job


def test_read_only_in_sixteen_colours_and_monochrome(demo_world: dict[str, str]) -> None:
    for name, extra in (("16", {"TERM": "xterm"}), ("mono", {"NO_COLOR": "1", "TERM": "vt100"})):
        terminal = Terminal(
            f"pgvault-ro-{name}-{os.getpid()}", [PGVAULT, "--read-only"], {**demo_world, **extra}
        )
        try:
            screen = terminal.wait_for("READ-ONLY", "No jobs yet", timeout=30)
            assert "n New backup" not in screen and "starts a backup" not in screen
            terminal.keys("n")
            time.sleep(0.5)
            assert "New backup" not in terminal.screen()
            terminal.keys("q")
            terminal.wait_for("EXITED=0", timeout=20)
        finally:
            terminal.close()
    assert not Path(demo_world["PGVAULT_DEMO_DIR"]).exists()
