"""The console driven key by key (Pilot) on fixed job rows in a real job store.

The rows' process lives on another host, so what a key asks of a job is exactly what the
store records (pause-requested, cancel-requested...); the end-to-end tests in tests/e2e
watch real backups obey.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from textual.widgets import Input, Label, RichLog, Static

from core.jobs import JobState, JobStore
from tests.support.console import (
    NOW,
    OTHER_HOST,
    ROWS,
    fill_store,
    loaded,
    make_app,
    palette_titles,
    settle,
    steady,
)
from tui.app import PgvaultApp
from tui.config import MUTATING, ConsoleConfig
from tui.modals.confirm import ConfirmScreen
from tui.modals.help import HelpScreen
from tui.modals.new_backup import NewBackupScreen
from tui.screens.backup import BackupScreen
from tui.screens.catalog import CatalogScreen
from tui.screens.job_detail import JobDetailScreen
from tui.screens.jobs import JobsScreen
from tui.screens.wal import WalScreen
from tui.widgets.keybar import KeyBar
from tui.widgets.table import ResponsiveTable

RUNNING, PAUSED, DONE, FAILED, CANCELLED = 5, 4, 3, 2, 1  # ids of the fixed rows


def state_of(state_dir: str, job_id: int) -> JobState:
    with JobStore.open(state_dir) as store:
        return store.get(job_id).state


def table_keys(app: PgvaultApp, selector: str = "#jobs") -> list[str]:
    return app.screen.query_one(selector, ResponsiveTable).keys


async def test_digits_switch_views_and_enter_esc_drill(
    fixed_state: str, fixed_catalog: str
) -> None:
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test() as pilot:
        await settle(pilot, loaded(app))
        assert isinstance(app.screen, JobsScreen)
        assert table_keys(app) == ["5", "4", "3", "2", "1"]
        await pilot.press("2")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
        await pilot.press("3")
        await settle(pilot, lambda: isinstance(app.screen, WalScreen))
        await pilot.press("1")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen))
        await pilot.press("j", "enter")
        await settle(pilot, lambda: isinstance(app.screen, JobDetailScreen))
        assert isinstance(app.screen, JobDetailScreen) and app.screen.job_id == PAUSED
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen))
        await pilot.press("2")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
        await pilot.press("tab")
        await steady(pilot)
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, BackupScreen))
        await settle(pilot, lambda: isinstance(app.screen, BackupScreen) and app.screen.loaded)
        tables = app.screen.query_one("#tables", ResponsiveTable)
        assert tables.row_count == 7
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))


async def test_question_mark_lists_the_keys_that_work_here(fixed_state: str) -> None:
    app = make_app(fixed_state)
    async with app.run_test() as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert isinstance(app.screen, HelpScreen)
        ids = {k.binding_id for k in app.screen.keys}
        # The selected job runs: pause and cancel apply, resume and retry do not.
        assert {"job.pause", "job.cancel", "job.open", "filter", "view.catalog", "quit"} <= ids
        assert "job.resume" not in ids and "job.retry" not in ids
        first = app.screen
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen))
        await pilot.press("question_mark")  # the same help again: kept, not rebuilt
        await settle(pilot, lambda: app.screen is first)
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen))
        await pilot.press("j", "question_mark")  # the paused job: resume instead of pause
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert isinstance(app.screen, HelpScreen)
        ids = {k.binding_id for k in app.screen.keys}
        assert "job.resume" in ids and "job.pause" not in ids


async def test_the_help_scrolls_with_the_vim_keys_too(fixed_state: str) -> None:
    app = make_app(fixed_state)
    async with app.run_test(size=(80, 16)) as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        body = app.screen.query_one("#help-body")
        await pilot.press("j", "j")
        await settle(pilot, lambda: body.scroll_y == 2)
        await pilot.press("G")
        await settle(pilot, lambda: body.scroll_y == body.max_scroll_y > 2)
        await pilot.press("k")
        await settle(pilot, lambda: body.scroll_y == body.max_scroll_y - 1)
        await pilot.press("g")
        await settle(pilot, lambda: body.scroll_y == 0)
        assert isinstance(app.screen, HelpScreen)  # none of them closed it


async def test_p_pauses_and_resumes_the_selected_job(fixed_state: str) -> None:
    app = make_app(fixed_state)
    async with app.run_test() as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("p")
        await settle(pilot, lambda: state_of(fixed_state, RUNNING) is JobState.PAUSE_REQUESTED)
        await settle(pilot, lambda: app.state.jobs[RUNNING].state is JobState.PAUSE_REQUESTED)
        await pilot.press("p")
        await settle(pilot, lambda: state_of(fixed_state, RUNNING) is JobState.RUNNING)
        await pilot.press("j", "p")
        await settle(pilot, lambda: state_of(fixed_state, PAUSED) is JobState.RUNNING)


@pytest.mark.parametrize("refusal", ["enter", "n", "escape"])
async def test_cancel_asks_and_only_y_confirms(fixed_state: str, refusal: str) -> None:
    app = make_app(fixed_state)
    async with app.run_test() as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("C")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press(refusal)
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen))
        await pilot.pause(0.3)
        assert state_of(fixed_state, RUNNING) is JobState.RUNNING
        await pilot.press("C")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await settle(pilot, lambda: state_of(fixed_state, RUNNING) is JobState.CANCEL_REQUESTED)


async def test_read_only_hides_every_action(fixed_state: str) -> None:
    app = make_app(fixed_state, read_only=True)
    async with app.run_test() as pilot:
        await settle(pilot, loaded(app))
        actions = {b.binding.action for b in app.screen.active_bindings.values()}
        assert not actions & MUTATING, actions & MUTATING
        await pilot.press("n", "p", "C")
        await pilot.pause(0.3)
        assert isinstance(app.screen, JobsScreen)
        assert state_of(fixed_state, RUNNING) is JobState.RUNNING
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, JobDetailScreen))
        actions = {b.binding.action for b in app.screen.active_bindings.values()}
        assert not actions & MUTATING
        await pilot.press("p", "C")
        await pilot.pause(0.3)
        assert state_of(fixed_state, RUNNING) is JobState.RUNNING
        titles = palette_titles(app)
        assert titles and not [t for t in titles if t.startswith(("Pause", "Cancel", "New"))]


async def test_a_click_on_a_key_in_the_key_bar_presses_it(fixed_state: str) -> None:
    app = make_app(fixed_state)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, loaded(app))
        line = app.screen.query_one(KeyBar).render().plain
        await pilot.click(KeyBar, offset=(line.index("Pause"), 0))
        await settle(pilot, lambda: state_of(fixed_state, RUNNING) is JobState.PAUSE_REQUESTED)
        await pilot.click(KeyBar, offset=(line.index("Help"), 0))
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))


async def test_a_narrow_key_bar_keeps_help_and_quit(fixed_state: str) -> None:
    """Too narrow for every key, the bar drops the keys nearest its end (the help screen
    lists them all), never `? Help` and `q Quit`, and never cuts one in half."""
    app = make_app(fixed_state)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, loaded(app))
        wide = app.screen.query_one(KeyBar).render().plain
    assert "Filter" in wide and "New backup" in wide
    app = make_app(fixed_state)
    async with app.run_test(size=(44, 20)) as pilot:
        await settle(pilot, loaded(app))
        bar = app.screen.query_one(KeyBar)
        line = bar.render().plain
        assert line.startswith("enter Open") and line.endswith("? Help q Quit"), line
        assert len(line) <= bar.size.width and "New backup" not in line, line
        await pilot.click(KeyBar, offset=(line.index("Help"), 0))
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))


async def test_filter_narrows_and_escape_clears(fixed_state: str) -> None:
    app = make_app(fixed_state)
    async with app.run_test() as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("slash", *"billing")
        await settle(pilot, lambda: table_keys(app) == ["4", "1"])
        await pilot.press("enter")  # keep the filter, back to the table
        await pilot.press("escape")
        await settle(pilot, lambda: table_keys(app) == ["5", "4", "3", "2", "1"])
        await pilot.press("slash", *"nothing-like-this")
        await settle(pilot, lambda: not app.screen.query_one("#jobs").display)


async def test_p_on_another_hosts_job_that_went_quiet_says_where_it_runs(
    fixed_state: str,
) -> None:
    """The fixed rows run on OTHER_HOST; a minute after their last heartbeat nothing there
    reads this store: the console refuses, naming the host, and records no request."""
    config = ConsoleConfig(state_dir=fixed_state, clock=lambda: NOW + 60, reap=False)
    app = PgvaultApp(config)
    async with app.run_test() as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("p")
        await settle(
            pilot,
            lambda: any(f"runs on host {OTHER_HOST}" in str(n.message) for n in app._notifications),
        )
        assert state_of(fixed_state, RUNNING) is JobState.RUNNING


async def test_palette_pauses_a_job_by_id(fixed_state: str) -> None:
    app = make_app(fixed_state)
    async with app.run_test() as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("colon")
        await pilot.pause(0.3)
        await pilot.press(*"Pause job 5")
        await pilot.pause(0.8)
        await pilot.press("enter")
        await settle(pilot, lambda: state_of(fixed_state, RUNNING) is JobState.PAUSE_REQUESTED)


async def test_keymap_file_moves_a_key(fixed_state: str, tmp_path: Path) -> None:
    keymap = Path(os.environ["XDG_CONFIG_HOME"]) / "pgvault" / "keymap.toml"
    keymap.parent.mkdir(parents=True)
    keymap.write_text('[keys]\n"job.pause" = "space"\n')
    app = make_app(fixed_state)
    async with app.run_test() as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("p")
        await pilot.pause(0.3)
        assert state_of(fixed_state, RUNNING) is JobState.RUNNING
        await pilot.press("space")
        await settle(pilot, lambda: state_of(fixed_state, RUNNING) is JobState.PAUSE_REQUESTED)


async def test_form_checks_fields_as_they_are_typed(fixed_state: str) -> None:
    app = make_app(fixed_state)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, NewBackupScreen))
        form = app.screen
        # Prefilled from the newest backup job (server and destination, never credentials).
        assert form.query_one("#server", Input).value == "pg-main"
        assert form.query_one("#destination", Input).value == "s3://acme-backups/pg"
        errors = {
            "bandwidth": ("20 parsecs", "not a valid size"),
            "jobs": ("0", "must be at least 1"),
            "name": ("latest", "reserved word"),
            "tags": ("owner", "must be KEY,VALUE"),
            "destination": ("ftp://nowhere", "unsupported URL scheme"),
            "port": ("99999", "from 1 to 65535"),
        }
        for field, (value, _) in errors.items():
            form.query_one(f"#{field}", Input).value = value
        await settle(pilot, lambda: all(form.query_one(f"#{f}-error").display for f in errors))
        for field, (_, message) in errors.items():
            label = form.query_one(f"#{field}-error", Label)
            assert label.display and message in str(label.render()), field
        await pilot.press("ctrl+s")
        await pilot.pause(0.3)
        assert app.screen is form  # nothing started
        assert "Fix the fields" in str(form.query_one("#form-status").render())
        with JobStore.open(fixed_state) as store:
            assert len(store.list_jobs()) == 5
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen))


async def test_a_destination_that_cannot_be_listed_is_one_line(
    fixed_state: str, tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "plain-file"
    not_a_directory.write_text("x")
    app = make_app(fixed_state, f"file://{not_a_directory}")
    async with app.run_test() as pilot:
        await settle(pilot, loaded(app))
        view = app.state.destinations[f"file://{not_a_directory}"]
        assert view.error and "\n" not in view.error
        await pilot.press("2")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
        assert app.is_running


async def test_an_unreadable_job_store_is_reported_not_fatal(tmp_path: Path) -> None:
    blocker = tmp_path / "state-is-a-file"
    blocker.write_text("not a directory")
    app = make_app(str(blocker))
    async with app.run_test() as pilot:
        await settle(pilot, lambda: app.state.feed_error is not None)
        assert "job store" in (app.state.feed_error or "")
        await pilot.press("2", "1")
        await pilot.pause(0.2)
        assert app.is_running


async def test_credentials_in_a_url_never_reach_the_screen(fixed_state: str) -> None:
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYzEXAMPLEKEY"
    url = (
        "s3://acme-private/pg?AWS_ACCESS_KEY_ID=AKIAEXAMPLE&AWS_SECRET_ACCESS_KEY="
        f"{secret}&AWS_ENDPOINT=http://127.0.0.1:9"
    )
    app = make_app(fixed_state, url)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, loaded(app), timeout=30)
        await pilot.press("2")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
        await pilot.pause(0.3)
        screen = app.export_screenshot()
        assert "acme-private" in screen
        assert secret not in screen
        assert all(secret not in label for label in app.state.destinations)


async def test_fill_store_rows_are_what_the_table_shows(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    ids = fill_store(state)
    app = make_app(state)
    async with app.run_test() as pilot:
        await settle(pilot, loaded(app))
        assert table_keys(app) == [str(i) for i in ids]
        table = app.screen.query_one("#jobs", ResponsiveTable)
        states = [table.get_cell(str(i), "state").plain for i in ids]
        assert states == ["running", "paused", "succeeded", "failed", "cancelled"]


async def test_job_detail_opens_on_the_newest_log_lines_with_room_for_them_at_80x24(
    tmp_path: Path,
) -> None:
    state = str(tmp_path / "state")
    fill_store(state, (replace(ROWS[0], log=tuple(f"line {i}" for i in range(40))),))
    app = make_app(state)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, JobDetailScreen))
        log = app.screen.query_one("#detail-log", RichLog)
        await settle(pilot, lambda: len(log.lines) == 40)
        await pilot.pause(0.3)
        assert log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y
        # Under 32 rows the chart gives the log three of its rows, and still draws its bars.
        chart = app.screen.query_one("#detail-chart")
        assert chart.size.height >= 2
        assert log.scrollable_content_region.height >= 6
        await pilot.resize_terminal(120, 40)
        await settle(pilot, lambda: chart.outer_size.height == 9)


async def test_job_detail_keeps_the_newest_log_lines_after_a_resize(tmp_path: Path) -> None:
    """Seen in tmux: a job's detail at 200x50 (its 40 lines all shown), the terminal back to
    80x24: the log showed its first lines, not the last (where a job says how it ended)."""
    state = str(tmp_path / "state")
    fill_store(state, (replace(ROWS[0], log=tuple(f"line {i}" for i in range(40))),))
    app = make_app(state)
    async with app.run_test(size=(200, 80)) as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, JobDetailScreen))
        log = app.screen.query_one("#detail-log", RichLog)
        await settle(pilot, lambda: len(log.lines) == 40)
        await pilot.pause(0.3)
        assert log.max_scroll_y == 0  # every line shown
        await pilot.resize_terminal(80, 24)
        await settle(pilot, lambda: log.max_scroll_y > 0)
        await pilot.pause(0.3)
        assert log.scroll_y == log.max_scroll_y, (log.scroll_y, log.max_scroll_y)


async def test_the_catalog_follows_the_first_server_until_the_operator_moves(
    fixed_state: str, fixed_catalog: str
) -> None:
    from textual.widgets import Tree

    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("2")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
        catalog = app.screen
        assert isinstance(catalog, CatalogScreen)
        tree = catalog.query_one("#destinations", Tree)
        await settle(pilot, lambda: catalog.selection == ("server", fixed_catalog, "pg-main"))
        # The tree highlights its first line (the empty default destination) by itself, as
        # it does when listings arrive: the view stays on the server's backups.
        tree.move_cursor(tree.root.children[0])
        await pilot.pause(0.3)
        assert catalog.selection == ("server", fixed_catalog, "pg-main")
        assert table_keys(app, "#backups")
        # The operator's own move is kept.
        tree.focus()
        await pilot.press("up")
        await settle(
            pilot, lambda: catalog.selection is not None and catalog.selection[0] == "destination"
        )
        await pilot.pause(0.3)
        assert catalog.selection[0] == "destination"


async def test_one_job_detail_screen_shows_each_job_opened(fixed_state: str) -> None:
    app = make_app(fixed_state)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, JobDetailScreen))
        detail = app.screen
        assert isinstance(detail, JobDetailScreen) and detail.job_id == RUNNING
        log = detail.query_one("#detail-log", RichLog)
        await settle(pilot, lambda: len(log.lines) == len(ROWS[0].log) and bool(detail.samples))
        # Back and in again on the same job: the log goes on, nothing read twice.
        await pilot.press("escape", "enter")
        await settle(pilot, lambda: app.screen is detail)
        await pilot.pause(1.2)  # two polls
        assert len(log.lines) == len(ROWS[0].log)
        # Another job: the same screen, nothing left of the first job.
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen))
        await pilot.press("j", "j", "j", "enter")
        await settle(pilot, lambda: app.screen is detail and detail.job is not None)
        assert detail.job_id == FAILED and detail.job is not None and detail.job.id == FAILED
        await pilot.pause(1.2)
        title = detail.query_one("#detail-title", Static)
        assert "job 2" in str(title.render())
        shown = " ".join(line.text for line in log.lines)
        assert ROWS[0].log[0] not in shown


async def test_a_kept_screen_shown_again_takes_a_theme_changed_meanwhile(
    fixed_state: str,
) -> None:
    from textual.color import Color

    app = make_app(fixed_state)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, JobDetailScreen))
        detail = app.screen
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen))
        before = detail.styles.background
        app.theme = "textual-light" if app.theme != "textual-light" else "textual-dark"
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot, lambda: app.screen is detail)
        await pilot.pause()
        background = app.current_theme.background
        assert background is not None
        assert detail.styles.background == Color.parse(background) != before
