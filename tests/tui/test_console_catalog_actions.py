"""Restore, verify and delete from the catalog, key by key (Pilot), on a fixed local catalog.

Each starts a real detached job through core's job kinds; delete is followed to its end (the
backup's files go, and the catalog stops listing it). Restore and verify are checked as the
jobs they record: the fixed catalog's objects are not real backups.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from textual.widgets import Input

from core.catalog.backup_info import BackupInfo
from core.catalog.layout import ServerLayout
from core.errors import OperationFailed
from core.jobs import Job, JobFilter, JobState, JobStore
from tests.support.console import loaded, make_app, open_catalog_on, palette_titles, settle
from tui.adapter import list_server
from tui.config import MUTATING
from tui.modals.confirm import ConfirmScreen
from tui.modals.help import HelpScreen
from tui.modals.restore import RestoreScreen
from tui.screens.backup import BackupScreen
from tui.screens.catalog import CatalogScreen
from tui.screens.jobs import JobsScreen
from tui.widgets.table import ResponsiveTable

DONE_ID, FAILED_ID = "20260313T020000", "20260314T020000"  # in tests.support.console


def jobs_of(state_dir: str, kind: str) -> list[Job]:
    with JobStore.open(state_dir) as store:
        return store.list_jobs(JobFilter(kinds=(kind,)))


async def test_delete_asks_and_y_removes_the_backup(
    fixed_state: str, fixed_catalog: str, console_world: Path
) -> None:
    info = console_world / "catalog" / ServerLayout("pg-main").backup_info(FAILED_ID)
    assert info.exists()
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_catalog_on(app, pilot, f"pg-main/{FAILED_ID}")
        await pilot.press("D")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
        await pilot.pause(0.3)
        assert jobs_of(fixed_state, "delete") == []

        await pilot.press("D")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        # The job appears, selected, on the jobs view, and runs to its end.
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
        await settle(pilot, lambda: len(jobs_of(fixed_state, "delete")) == 1)
        (job,) = jobs_of(fixed_state, "delete")
        assert job.server == "pg-main" and job.options.get("backup") == FAILED_ID
        await settle(pilot, lambda: jobs_of(fixed_state, "delete")[0].final, timeout=60)
        assert jobs_of(fixed_state, "delete")[0].state is JobState.SUCCEEDED
        assert not info.exists()
        # The catalog lists it no more (the console re-lists a destination a delete changed).
        await pilot.press("2")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
        table = app.screen.query_one("#backups", ResponsiveTable)
        await settle(pilot, lambda: f"pg-main/{FAILED_ID}" not in table.keys, timeout=20)
        assert f"pg-main/{DONE_ID}" in table.keys


async def test_verify_asks_and_y_starts_a_verify_job(fixed_state: str, fixed_catalog: str) -> None:
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        catalog = await open_catalog_on(app, pilot, f"pg-main/{DONE_ID}")
        assert "v Verify" in str(catalog.query_one("KeyBar").render())
        await pilot.press("v")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
        assert jobs_of(fixed_state, "verify") == []
        await pilot.press("v")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await settle(pilot, lambda: len(jobs_of(fixed_state, "verify")) == 1, timeout=20)
        (job,) = jobs_of(fixed_state, "verify")
        assert job.server == "pg-main" and job.options.get("backup") == DONE_ID
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen))


def error_of(form: RestoreScreen, field: str) -> str:
    label = form.query_one(f"#{field}-error")
    return str(label.render()) if label.display else ""


async def test_restore_form_says_each_bad_field_under_it_and_starts_a_restore_job(
    fixed_state: str, fixed_catalog: str, tmp_path: Path
) -> None:
    """The physical restore form said the errors of Into, WAL dir, Port, Bandwidth cap and
    Point in time in its status line only, one per Start. As the other job forms, each is now
    said under its field (typed ones as typed), every one at Start, the first focused and in
    view at 80x24; the errors core finds at Start (Into not empty, a target before the
    backup's end) go under their field too."""
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_catalog_on(app, pilot, f"pg-main/{DONE_ID}")
        await pilot.press("enter")  # from the backup's own screen too
        await settle(pilot, lambda: isinstance(app.screen, BackupScreen))
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, RestoreScreen))
        form = app.screen
        assert isinstance(form, RestoreScreen)
        assert form.value("backup") == DONE_ID
        status = form.query_one("#form-status")
        body = form.query_one("#form-body")

        await pilot.press("ctrl+s")  # no directory
        await settle(pilot, lambda: "Fix the fields" in str(status.render()))
        assert "give the directory" in error_of(form, "directory")
        assert form.focused is form.query_one("#directory")

        # Typed: Port's error shows as it is typed, under it.
        form.set_focus(form.query_one("#port"))
        await pilot.press(*"70000")
        await settle(pilot, lambda: "from 1 to 65535" in error_of(form, "port"))

        full = tmp_path / "full"
        full.mkdir()
        (full / "PG_VERSION").write_text("15\n")
        values = {
            "directory": str(full),
            "wal_restore_dir": str(full / "wal"),
            "bandwidth": "fast",
            "time": "yesterday",
        }
        for field, value in values.items():
            form.query_one(f"#{field}").value = value  # type: ignore[attr-defined]
        form.set_focus(form.query_one("#directory"))
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: "Fix the fields" in str(status.render()))
        assert "outside Into" in error_of(form, "wal_restore_dir")
        assert "from 1 to 65535" in error_of(form, "port")
        assert "fast" in error_of(form, "bandwidth")
        assert "invalid target time" in error_of(form, "time")
        assert not error_of(form, "directory")
        wal_dir = form.query_one("#wal_restore_dir")
        assert form.focused is wal_dir
        await pilot.pause(0.3)
        assert body.region.contains_region(wal_dir.region), (body.region, wal_dir.region)
        assert jobs_of(fixed_state, "restore") == []

        # Before this backup's end: said under Point in time (core's check at Start).
        assert "e.g. 2026-03-13 02:" in form.query_one("#time").placeholder  # type: ignore[attr-defined]
        for field, value in (
            ("wal_restore_dir", ""),
            ("port", "5434"),
            ("bandwidth", "20MB"),
            ("time", "2026-03-13 01:00:00+00:00"),
        ):
            form.query_one(f"#{field}").value = value  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: "after the recovery target" in error_of(form, "time"))
        assert form.focused is form.query_one("#time")
        assert "Fix the fields" in str(status.render())
        assert jobs_of(fixed_state, "restore") == []

        # Into not empty: found as the job starts, said under Into.
        form.query_one("#time").value = "2026-03-13 12:00:00+00:00"  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: "is not empty" in error_of(form, "directory"), timeout=20)
        assert "--delta" not in error_of(form, "directory")  # the form's words
        assert form.focused is form.query_one("#directory")
        assert jobs_of(fixed_state, "restore") == []

        form.query_one("#directory").value = str(tmp_path / "restored")  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
        (job,) = jobs_of(fixed_state, "restore")
        # A cap on what the restore downloads (the job's store), as --max-bandwidth sets it.
        assert job.options["store_config"]["max_download_bandwidth"] == 20 * 1024 * 1024
        assert job.server == "pg-main"
        assert job.options.get("backup") == DONE_ID
        assert job.options.get("recovery_dir") == str(tmp_path / "restored")
        assert job.options.get("target", {}).get("time", "").startswith("2026-03-13 12:00:00")
        assert job.options.get("port") == 5434  # written into the copy's postgresql.auto.conf


async def test_read_only_hides_restore_verify_and_delete(
    fixed_state: str, fixed_catalog: str
) -> None:
    app = make_app(fixed_state, fixed_catalog, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        catalog = await open_catalog_on(app, pilot, f"pg-main/{DONE_ID}")
        actions = {b.binding.action for b in catalog.active_bindings.values()}
        assert not actions & MUTATING, actions & MUTATING
        keys = str(catalog.query_one("KeyBar").render())
        assert "Restore" not in keys and "Verify" not in keys and "Delete" not in keys
        await pilot.press("r", "v", "D")
        await pilot.pause(0.3)
        assert app.screen is catalog
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert isinstance(app.screen, HelpScreen)
        ids = {k.binding_id for k in app.screen.keys}
        assert not ids & {"backup.restore", "backup.verify", "backup.delete"}
    for kind in ("restore", "verify", "delete"):
        assert jobs_of(fixed_state, kind) == []


async def test_a_failed_backup_can_be_deleted_not_restored(
    fixed_state: str, fixed_catalog: str
) -> None:
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        catalog = await open_catalog_on(app, pilot, f"pg-main/{FAILED_ID}")
        keys = str(catalog.query_one("KeyBar").render())
        assert "D Delete" in keys and "Restore" not in keys and "Verify" not in keys
        await pilot.press("r")
        await pilot.pause(0.3)
        assert app.screen is catalog


async def test_the_palette_names_every_listed_backup_and_what_can_be_done_to_it(
    fixed_state: str, fixed_catalog: str
) -> None:
    done, failed = f"backup {DONE_ID} of pg-main (DONE)", f"backup {FAILED_ID} of pg-main (FAILED)"
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, loaded(app))
        titles = palette_titles(app)
        assert {f"{verb} {done}" for verb in ("Show", "Restore", "Verify", "Delete")} <= set(titles)
        assert f"Show {failed}" in titles and f"Delete {failed}" in titles
        assert f"Restore {failed}" not in titles and f"Verify {failed}" not in titles
        await pilot.press("colon")
        await pilot.pause(0.3)
        await pilot.press(*f"Restore backup {DONE_ID}")
        await pilot.pause(0.8)
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, RestoreScreen))
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, RestoreScreen))
        await pilot.press("colon")
        await pilot.pause(0.3)
        await pilot.press(*f"Show backup {FAILED_ID}")
        await pilot.pause(0.8)
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, BackupScreen))
        assert app.current_mode == "catalog"
    app = make_app(fixed_state, fixed_catalog, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, loaded(app))
        backups = [t for t in palette_titles(app) if " of pg-main (" in t]
        assert {f"Show {done}", f"Show {failed}"} <= set(backups)
        assert all(title.startswith("Show ") for title in backups)


async def test_the_restore_form_restores_over_a_directory_with_delta(
    fixed_state: str, fixed_catalog: str, tmp_path: Path
) -> None:
    existing = tmp_path / "data"
    existing.mkdir()
    (existing / "PG_VERSION").write_text("16\n")
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_catalog_on(app, pilot, f"pg-main/{DONE_ID}")
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, RestoreScreen))
        form = app.screen
        assert isinstance(form, RestoreScreen)
        form.query_one("#directory").value = str(existing)  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: "is not empty" in error_of(form, "directory"), timeout=20)
        assert jobs_of(fixed_state, "restore") == []

        form.query_one("#delta").value = True  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
        (job,) = jobs_of(fixed_state, "restore")
        assert job.options.get("recovery_dir") == str(existing)
        assert job.options.get("delta") is True


async def test_delta_over_an_incremental_is_refused_in_the_form(
    fixed_state: str, chain_catalog: str, tmp_path: Path
) -> None:
    """Seen in tmux: Delta on an incremental started a restore job that failed at once
    ("--delta restores for full backups only"); the form says so before any job."""
    existing = tmp_path / "data"
    existing.mkdir()
    (existing / "PG_VERSION").write_text("16\n")
    app = make_app(fixed_state, chain_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_catalog_on(app, pilot, "pg-main/20260313T080000")
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, RestoreScreen))
        form = app.screen
        assert isinstance(form, RestoreScreen)
        status = form.query_one("#form-status")
        form.query_one("#directory").value = str(existing)  # type: ignore[attr-defined]
        form.query_one("#delta").value = True  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: "full backups only" in str(status.render()))
        await pilot.pause(0.5)
        assert isinstance(app.screen, RestoreScreen)
        assert jobs_of(fixed_state, "restore") == []
        # Into an empty or new directory, the incremental restores as before.
        form.query_one("#delta").value = False  # type: ignore[attr-defined]
        form.query_one("#directory").value = str(tmp_path / "new")  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
        (job,) = jobs_of(fixed_state, "restore")
        assert job.options.get("backup") == "20260313T080000"


async def test_the_restore_form_names_its_own_wal_dir_field(
    fixed_state: str, fixed_catalog: str, tmp_path: Path
) -> None:
    """restore_command's directory (INTO.pgvault) that cannot be made: the form said "choose
    a place with --wal-restore-dir", an option it did not have. It has the WAL dir field now,
    and its errors name fields, not command-line options."""
    (tmp_path / "restored.pgvault").write_text("a file where the WAL directory would go\n")
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_catalog_on(app, pilot, f"pg-main/{DONE_ID}")
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, RestoreScreen))
        form = app.screen
        assert isinstance(form, RestoreScreen)
        form.query_one("#directory").value = str(tmp_path / "restored")  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await settle(
            pilot, lambda: "is not a directory" in error_of(form, "wal_restore_dir"), timeout=20
        )
        said = error_of(form, "wal_restore_dir")  # under the field it is about
        assert "(the WAL dir field)" in said and "--" not in said, said
        assert jobs_of(fixed_state, "restore") == []

        form.query_one("#wal_restore_dir").value = str(tmp_path / "spool")  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
        (job,) = jobs_of(fixed_state, "restore")
        assert job.options.get("wal_restore_dir") == str(tmp_path / "spool")


async def test_keys_handed_to_the_restore_form_before_it_mounts_go_to_into(
    fixed_state: str, fixed_catalog: str, tmp_path: Path
) -> None:
    """Keys typed in the same read as the key that opens a form reach it before it has a
    field focused: they go to the field it focuses first (Into), not to whatever Textual's
    auto focus picked (Backup) nor nowhere."""
    from textual import events

    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        catalog = await open_catalog_on(app, pilot, f"pg-main/{DONE_ID}")
        ref = catalog.current_backup()
        assert ref is not None
        form = RestoreScreen(ref, fixed_state)
        app.push_screen(form)
        for key in "/srv/x":
            form.post_message(events.Key("slash" if key == "/" else key, key))
        await settle(pilot, lambda: form.is_mounted and form.query("#directory"))
        await pilot.pause(0.3)
        assert form.value("directory") == "/srv/x"
        assert form.value("backup") == DONE_ID


async def test_a_failed_backups_summary_has_no_blank_line(
    fixed_state: str, fixed_catalog: str, console_world: Path
) -> None:
    """Seen in tmux: a cancelled backup's summary (no end WAL) had a blank line before its
    error, in a box of few lines."""
    from textual.widgets import Static

    info = console_world / "catalog" / ServerLayout("pg-main").backup_info(FAILED_ID)
    lines = info.read_text().splitlines()  # cancelled while copying: no end WAL yet
    info.write_text("".join(f"{line}\n" for line in lines if not line.startswith("end_wal=")))
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(120, 30)) as pilot:
        catalog = await open_catalog_on(app, pilot, f"pg-main/{FAILED_ID}")
        summary = catalog.query_one("#backup-summary", Static)
        await settle(pilot, lambda: "error:" in str(summary.render()))
        lines = str(summary.render()).splitlines()
        assert all(line.strip() for line in lines), lines


async def test_a_backup_the_catalog_does_not_list_is_refused_in_the_restore_form(
    fixed_state: str, fixed_catalog: str, tmp_path: Path
) -> None:
    """Seen in tmux: the restore form took a Backup the catalog has no backup by (a typo of
    a name) and started a restore job that failed at once. The form now refuses it, under
    its Backup field (focused), as it does a FAILED backup's ID; a listed name is taken."""
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_catalog_on(app, pilot, f"pg-main/{DONE_ID}")
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, RestoreScreen))
        form = app.screen
        assert isinstance(form, RestoreScreen)
        form.query_one("#directory").value = str(tmp_path / "restored")  # type: ignore[attr-defined]
        status = form.query_one("#form-status")
        error = form.query_one("#backup-error")
        for typed, said in (
            ("before-upgrad", "no backup 'before-upgrad' of server pg-main"),
            (FAILED_ID, f"backup {FAILED_ID} is FAILED, not DONE"),
        ):
            form.query_one("#backup").value = typed  # type: ignore[attr-defined]
            await pilot.press("ctrl+s")
            await settle(pilot, lambda: "Fix the fields" in str(status.render()))
            assert said in str(error.render()), str(error.render())
            assert error.display and form.focused is form.query_one("#backup")
            await pilot.pause(0.3)
            assert isinstance(app.screen, RestoreScreen)
            assert jobs_of(fixed_state, "restore") == []

        form.query_one("#backup").value = "before-upgrade"  # type: ignore[attr-defined]
        await pilot.pause(0.1)
        assert not error.display
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
        (job,) = jobs_of(fixed_state, "restore")
        assert job.options.get("backup") == "before-upgrade"


def take_backup_since(world: Path, backup_id: str, name: str) -> None:
    """A backup another host (or cron) took after the console listed the catalog: a copy of
    the DONE backup under a new ID and name."""
    layout = ServerLayout("pg-main")
    catalog = world / "catalog"
    source = catalog / layout.backup_prefix(DONE_ID)
    copy = catalog / layout.backup_prefix(backup_id)
    shutil.copytree(source, copy)
    info = copy / Path(layout.backup_info(backup_id)).name
    text = info.read_text().replace(DONE_ID, backup_id).replace("before-upgrade", name)
    info.write_text(text)


async def test_a_backup_taken_since_the_listing_is_found_when_the_form_starts(
    fixed_state: str, fixed_catalog: str, console_world: Path, tmp_path: Path
) -> None:
    """The Backup check used the console's last listing: a backup taken since (cron, another
    host) was refused until the operator pressed R. The form now lists the server again
    once, off the UI thread, before refusing a Backup its listing lacks; a name still not
    there is refused under Backup."""
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_catalog_on(app, pilot, f"pg-main/{DONE_ID}")
        take_backup_since(console_world, "20260315T020000", "after-upgrade")

        async def start_with(typed: str) -> RestoreScreen:
            await pilot.press("r")
            await settle(pilot, lambda: isinstance(app.screen, RestoreScreen))
            form = app.screen
            assert isinstance(form, RestoreScreen)
            form.query_one("#directory", Input).value = str(tmp_path / "restored")
            form.query_one("#backup", Input).value = typed
            await pilot.press("ctrl+s")
            return form

        typo = await start_with("after-upgrad")
        await settle(pilot, lambda: "no backup 'after-upgrad'" in error_of(typo, "backup"))
        assert typo.focused is typo.query_one("#backup")
        assert jobs_of(fixed_state, "restore") == []
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))

        await start_with("after-upgrade")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
        (job,) = jobs_of(fixed_state, "restore")
        assert job.options.get("backup") == "after-upgrade"


async def test_without_a_listing_the_form_says_the_backup_was_not_checked(
    fixed_state: str, fixed_catalog: str, tmp_path: Path
) -> None:
    """With no listing of the server (not loaded yet, or a listing error) the form took any
    Backup silently. It lists the server at Start; when that fails too it says, under Backup,
    that the check was skipped, and a second Start restores it unchecked."""

    def unreachable() -> tuple[BackupInfo, ...]:  # the store failing as the form lists it
        raise OperationFailed("cannot reach the destination: connection refused")

    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        catalog = await open_catalog_on(app, pilot, f"pg-main/{DONE_ID}")
        ref = catalog.current_backup()
        assert ref is not None
        form = RestoreScreen(ref, fixed_state, None, None, unreachable)
        app.push_screen(form)
        await settle(pilot, lambda: form.is_mounted and form.focused is not None)
        form.query_one("#directory", Input).value = str(tmp_path / "restored")
        form.query_one("#backup", Input).value = "before-upgrade"
        await pilot.press("ctrl+s")
        error = form.query_one("#backup-error")
        await settle(pilot, lambda: "not checked" in str(error.render()))
        assert "connection refused" in str(error.render()) and error.display
        assert jobs_of(fixed_state, "restore") == []
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: len(jobs_of(fixed_state, "restore")) == 1, timeout=20)

        # With a listing that works, a Backup the server lacks is refused, not unchecked.
        listed = RestoreScreen(
            ref, fixed_state, None, None, lambda: list_server(ref.url, "pg-main")
        )
        app.push_screen(listed)
        await settle(pilot, lambda: listed.is_mounted and listed.focused is not None)
        listed.query_one("#directory", Input).value = str(tmp_path / "other")
        listed.query_one("#backup", Input).value = "no-such-name"
        await pilot.press("ctrl+s")
        said = listed.query_one("#backup-error")
        await settle(pilot, lambda: "no backup 'no-such-name'" in str(said.render()))
        assert len(jobs_of(fixed_state, "restore")) == 1
