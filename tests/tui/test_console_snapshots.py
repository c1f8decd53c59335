"""Snapshots of every view at a fixed size, on fixed job rows, a fixed catalog and a fixed clock.

Regenerate after a deliberate UI change with `pytest tests/tui/test_console_snapshots.py
--snapshot-update`, then look at the SVGs (or screenshots/) before committing them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tests.support.console import loaded, make_app, settle, steady
from tui.app import PgvaultApp

SnapCompare = Callable[..., bool]


def before(
    app: PgvaultApp, *keys: str, then: Callable[[Pilot[Any]], Awaitable[None]] | None = None
) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """Wait for the data, press keys one at a time letting each screen settle, then `then`."""

    async def run(pilot: Pilot[Any]) -> None:
        await settle(pilot, loaded(app))
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.3)
            await steady(pilot)  # a loaded machine may take longer than the pause
        if then is not None:
            await then(pilot)
        await pilot.pause(0.5)

    return run


def test_jobs_view(snap_compare: SnapCompare, fixed_state: str) -> None:
    app = make_app(fixed_state)
    assert snap_compare(app, run_before=before(app))


def test_jobs_view_wide(snap_compare: SnapCompare, fixed_state: str) -> None:
    app = make_app(fixed_state)
    assert snap_compare(app, run_before=before(app), terminal_size=(132, 30))


def test_jobs_view_16_colours(snap_compare: SnapCompare, fixed_state: str) -> None:
    app = make_app(fixed_state)
    app.theme = "ansi-dark"
    assert snap_compare(app, run_before=before(app, "j"))


def test_jobs_view_read_only(snap_compare: SnapCompare, fixed_state: str) -> None:
    app = make_app(fixed_state, read_only=True)
    assert snap_compare(app, run_before=before(app))


def test_job_detail(snap_compare: SnapCompare, fixed_state: str) -> None:
    app = make_app(fixed_state)

    async def log_loaded(pilot: Pilot[Any]) -> None:
        from tui.screens.job_detail import JobDetailScreen

        await settle(pilot, lambda: isinstance(app.screen, JobDetailScreen) and app.screen.samples)
        await pilot.pause(0.8)

    assert snap_compare(app, run_before=before(app, "enter", then=log_loaded))


def test_cancel_confirmation(snap_compare: SnapCompare, fixed_state: str) -> None:
    app = make_app(fixed_state)
    assert snap_compare(app, run_before=before(app, "C"))


def test_catalog_view(snap_compare: SnapCompare, fixed_state: str, fixed_catalog: str) -> None:
    app = make_app(fixed_state, fixed_catalog)
    assert snap_compare(app, run_before=before(app, "2", "tab", "j"))


def test_catalog_view_wide(snap_compare: SnapCompare, fixed_state: str, fixed_catalog: str) -> None:
    """Every column on a wide terminal: COPIES counts each backup's second copies."""
    app = make_app(fixed_state, fixed_catalog)
    assert snap_compare(app, run_before=before(app, "2", "tab", "j"), terminal_size=(160, 30))


def test_backup_tables(snap_compare: SnapCompare, fixed_state: str, fixed_catalog: str) -> None:
    app = make_app(fixed_state, fixed_catalog)

    async def contents(pilot: Pilot[Any]) -> None:
        from tui.screens.backup import BackupScreen

        def shown() -> bool:
            screen = app.screen
            return isinstance(screen, BackupScreen) and screen.loaded and screen.wal_checked

        await settle(pilot, shown)

    assert snap_compare(app, run_before=before(app, "2", "tab", "j", "enter", then=contents))


def test_catalog_chains(snap_compare: SnapCompare, fixed_state: str, chain_catalog: str) -> None:
    """Incrementals under their full backup (tree prefix, KIND incr/diff)."""
    app = make_app(fixed_state, chain_catalog)
    assert snap_compare(app, run_before=before(app, "2", "tab", "j", "j", "j"))


def test_backup_chain(snap_compare: SnapCompare, fixed_state: str, chain_catalog: str) -> None:
    """An incremental's screen: its chain from the full backup and what a restore reads."""
    app = make_app(fixed_state, chain_catalog)

    async def contents(pilot: Pilot[Any]) -> None:
        from tui.screens.backup import BackupScreen

        def shown() -> bool:
            screen = app.screen
            return isinstance(screen, BackupScreen) and screen.loaded and screen.wal_checked

        await settle(pilot, shown)

    keys = ("2", "tab", "j", "j", "j", "enter")
    assert snap_compare(app, run_before=before(app, *keys, then=contents))


def test_restore_form(snap_compare: SnapCompare, fixed_state: str, fixed_catalog: str) -> None:
    app = make_app(fixed_state, fixed_catalog)

    async def filled(pilot: Pilot[Any]) -> None:
        for field in app.screen.query(Input):
            field.cursor_blink = False
        app.screen.query_one("#directory", Input).value = "/srv/restored"
        app.screen.query_one("#time", Input).value = "tomorrow at noon"
        await pilot.press("ctrl+s")  # refused: the time is not ISO 8601
        await pilot.pause(0.3)

    assert snap_compare(app, run_before=before(app, "2", "tab", "j", "r", then=filled))


def test_wal_view(snap_compare: SnapCompare, fixed_state: str, fixed_catalog: str) -> None:
    app = make_app(fixed_state, fixed_catalog)

    async def listed(pilot: Pilot[Any]) -> None:
        from tui.screens.wal import WalScreen

        await settle(pilot, lambda: isinstance(app.screen, WalScreen) and bool(app.screen.archives))

    assert snap_compare(app, run_before=before(app, "3", then=listed))


def test_new_backup_form(snap_compare: SnapCompare, fixed_state: str) -> None:
    app = make_app(fixed_state)

    async def still(pilot: Pilot[Any]) -> None:
        for field in app.screen.query(Input):
            field.cursor_blink = False
        app.screen.query_one("#bandwidth", Input).value = "20 parsecs"
        await pilot.pause(0.2)

    assert snap_compare(app, run_before=before(app, "n", then=still))


def test_help(snap_compare: SnapCompare, fixed_state: str) -> None:
    app = make_app(fixed_state)
    assert snap_compare(app, run_before=before(app, "question_mark"))


def test_empty_store(snap_compare: SnapCompare, tmp_path: Any) -> None:
    app = make_app(str(tmp_path / "empty-state"))
    assert snap_compare(app, run_before=before(app))


def test_jobs_view_monochrome(
    snap_compare: SnapCompare, fixed_state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NO_COLOR: states, the selected row and the bars must read by text and shade alone.
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(fixed_state)
    assert app.no_color
    assert snap_compare(app, run_before=before(app, "j"))
