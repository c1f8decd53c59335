"""Keys typed in the same read as the key that opens a form (or the job detail) reach it (Pilot).

Each test posts its keys to the App at once, as the terminal driver does with one read (tmux
send-keys, SSH, a fast typist): `r`, `u`, `A` or `enter` then what the operator typed next.
The old console pushed the form only once the key's request had bubbled up to the app, after
the App had handed the next keys to the view behind it (a `/` opened the catalog's filter,
the rest went to the table)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import events
from textual.widgets import Input, Static

from tests.support.console import loaded, make_app, open_catalog_on, settle, steady
from tests.tui.test_console_wal_repair import open_wal
from tui.app import PgvaultApp
from tui.modals.restore import RestoreScreen
from tui.modals.unlock import UnlockScreen
from tui.modals.wal_repair import WalRepairScreen
from tui.screens.backup import BackupScreen

DONE_ID = "20260313T020000"  # the fixed catalog's DONE backup of pg-main
KEY_NAMES = {"/": "slash", "-": "minus", ".": "full_stop", " ": "space"}


def type_in_one_read(app: PgvaultApp, first: str, text: str) -> None:
    """`first` (a key name) then `text`, all queued before the App handles any of them."""
    app.post_message(events.Key(first, first if len(first) == 1 else None))
    for char in text:
        app.post_message(events.Key(KEY_NAMES.get(char, char), char))


def seal(catalog_url: str, backup_id: str) -> None:
    """The backup's archives as an encrypted one's: the console shows it locked."""
    base = Path(catalog_url.removeprefix("file://")) / "pg-main" / "base" / backup_id
    (base / "data.tar.age").write_bytes(b"age-encryption.org/v1\n")  # named: no read


def summary(app: PgvaultApp) -> object:
    return app.screen.query_one("#backup-summary", Static).render()


async def test_a_path_typed_with_r_lands_in_the_restore_forms_into(
    fixed_state: str, fixed_catalog: str
) -> None:
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_catalog_on(app, pilot, f"pg-main/{DONE_ID}")
        type_in_one_read(app, "r", "/srv/x")
        await settle(pilot, lambda: isinstance(app.screen, RestoreScreen))
        form = app.screen
        assert isinstance(form, RestoreScreen)
        await settle(pilot, lambda: form.value("directory") == "/srv/x")
        assert form.value("backup") == DONE_ID


@pytest.mark.parametrize("key", ["u", "enter"])
async def test_a_passphrase_typed_with_the_key_that_unlocks_lands_in_the_unlock_form(
    key: str, fixed_state: str, fixed_catalog: str
) -> None:
    """`u` in the catalog, or enter on a locked backup (the unlock form over its screen)."""
    seal(fixed_catalog, DONE_ID)
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_catalog_on(app, pilot, f"pg-main/{DONE_ID}")
        await settle(pilot, lambda: "locked; u unlocks it" in str(summary(app)))
        type_in_one_read(app, key, "s3cret-phrase")
        await settle(pilot, lambda: isinstance(app.screen, UnlockScreen))
        field = app.screen.query_one("#passphrase", Input)
        await settle(pilot, lambda: field.value == "s3cret-phrase")
        if key == "enter":
            assert isinstance(app.screen_stack[-2], BackupScreen)


async def test_a_directory_typed_with_a_lands_in_the_wal_repair_form(
    fixed_state: str, fixed_catalog: str
) -> None:
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_wal(app, pilot)
        type_in_one_read(app, "A", "/srv/pg")
        await settle(pilot, lambda: isinstance(app.screen, WalRepairScreen))
        field = app.screen.query_one("#pgdata", Input)
        await settle(pilot, lambda: field.value == "/srv/pg")


async def test_the_form_keys_are_characters_in_the_catalogs_filter(
    fixed_state: str, fixed_catalog: str
) -> None:
    """`r`, `u` and `enter` are priority keys of the catalog now: typed in its filter box
    they stay what they were there (characters, and enter ends the filter)."""
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(100, 30)) as pilot:
        catalog = await open_catalog_on(app, pilot, f"pg-main/{DONE_ID}")
        type_in_one_read(app, "slash", "upgrade")
        box = catalog.query_one("#filter", Input)
        await settle(pilot, lambda: box.value == "upgrade")
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.screen is catalog


async def test_keys_typed_with_r_on_a_locked_servers_failed_backup_land_in_the_unlock_form(
    fixed_state: str, fixed_catalog: str
) -> None:
    """The jobs view's `r` (resume a failed backup) opens the unlock form first when the
    server is locked (c1bacdf): what is typed with it goes there, not to the jobs table."""
    from core.backup.job import BACKUP
    from core.backup.request import make_backup_request
    from core.jobs import JobState, JobStore
    from core.urls import parse_location
    from tui.screens.jobs import JobsScreen
    from tui.widgets.table import ResponsiveTable

    seal(fixed_catalog, DONE_ID)
    location = parse_location(fixed_catalog)
    with JobStore.open(fixed_state) as store:
        failed = store.create(
            "backup",
            description="backup of pg-main",
            server="pg-main",
            destination=location.display(),
            options=BACKUP.options(make_backup_request(location, "pg-main")),
        ).id
        store.transition(failed, JobState.FAILED, error="lost")
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_catalog_on(app, pilot, f"pg-main/{DONE_ID}")
        await settle(pilot, lambda: "locked; u unlocks it" in str(summary(app)))
        await pilot.press("1")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen))
        table = app.screen.query_one("#jobs", ResponsiveTable)
        await settle(pilot, lambda: str(failed) in table.keys)
        table.focus()
        assert table.select_key(str(failed))
        await pilot.pause(0.2)
        type_in_one_read(app, "r", "s3cret-phrase")
        await settle(pilot, lambda: isinstance(app.screen, UnlockScreen))
        field = app.screen.query_one("#passphrase", Input)
        await settle(pilot, lambda: field.value == "s3cret-phrase")


async def test_keys_typed_with_enter_on_a_job_reach_its_detail(fixed_state: str) -> None:
    """The jobs view's `enter` opened the detail through a posted message: `j` typed with it
    moved the jobs table's cursor first (the detail then showed the job below) and `w` went
    to the jobs view. The detail of the job under the cursor at `enter` now takes them."""
    from tui.screens.job_detail import WINDOWS, JobDetailScreen
    from tui.screens.jobs import JobsScreen
    from tui.widgets.bandwidth import BandwidthChart
    from tui.widgets.table import ResponsiveTable

    app = make_app(fixed_state)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, loaded(app))
        jobs = app.screen
        assert isinstance(jobs, JobsScreen)
        table = jobs.query_one("#jobs", ResponsiveTable)
        chosen = table.keys[1]
        assert table.select_key(chosen)
        await pilot.pause(0.2)
        type_in_one_read(app, "enter", "jw")
        await settle(pilot, lambda: isinstance(app.screen, JobDetailScreen))
        await steady(pilot)
        detail = app.screen
        assert isinstance(detail, JobDetailScreen)
        assert detail.job_id == int(chosen)
        chart = detail.query_one("#detail-chart", BandwidthChart)
        assert chart.window == WINDOWS[2]  # `w` moved it on from the first 5 minutes
        assert table.current_key == chosen  # `j` never reached the table
