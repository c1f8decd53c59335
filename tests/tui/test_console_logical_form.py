"""The logical restore form at 80x24: its buttons stay in view whatever its error (Pilot).

No PostgreSQL: the form is opened on a logical backup's manifest and only refuses what it
is given, before any job."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, Checkbox, Input, Static

from core.catalog.backup_info import DONE
from core.logical.manifest import LogicalManifest
from tests.support.console import loaded, make_app, settle
from tui.adapter import BackupRef, logical_info
from tui.modals.logical_restore import LogicalRestoreScreen, Target

MANIFEST = LogicalManifest(
    backup_id="20260313T020000",
    server="pg-main",
    name=None,
    started="2026-03-13T02:00:00+00:00",
    finished="2026-03-13T02:01:00+00:00",
    pgvault_version="1",
    server_version=170002,
    server_version_text="17.2",
    pg_dump_version="17.2",
    compression=None,
    jobs=1,
    databases=(),
    globals_file="globals.sql",
    status=DONE,
)
REF = BackupRef(
    "file:///srv/backups",
    "file:///srv/backups",
    "pg-main",
    logical_info(MANIFEST),
    logical=MANIFEST,
)


async def test_the_buttons_stay_in_view_under_a_four_line_error_at_80x24(tmp_path: Path) -> None:
    """Seen in tmux at 80x24: the logical restore form's error ran to four lines and cut
    off its Start and Cancel buttons (its field area kept its 16 rows)."""
    app = make_app(str(tmp_path / "state"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, loaded(app), timeout=30)
        form = LogicalRestoreScreen(REF, Target(), str(tmp_path / "state"))
        app.push_screen(form)
        await settle(pilot, lambda: form.is_mounted and bool(form.query("#all_databases")))
        form.query_one("#database", Input).value = "appdb"
        form.query_one("#all_databases", Checkbox).value = True
        form.query_one("#tables", Input).value = " ".join(f"public.table_{i}" for i in range(3))
        await pilot.press("ctrl+s")
        status = form.query_one("#form-status", Static)
        await settle(pilot, lambda: "restores every database" in str(status.render()))
        await pilot.pause(0.3)
        assert status.region.height >= 2, status.region
        status.update("x " * 140)  # an error of four lines at this width
        await pilot.pause(0.3)
        assert status.region.height >= 4, status.region
        for button in form.query(Button):
            assert form.region.contains_region(button.region), (button.id, button.region)
            assert form.query_one("#dialog").region.contains_region(button.region)
        body = form.query_one("#form-body")
        assert body.region.height >= 3  # the fields still shown, scrolled

        # On a tall terminal the field area is as tall as its fields (at most 16 rows): no
        # blank rows added under them, the whole grid shown without scrolling.
        await pilot.resize_terminal(100, 50)
        await pilot.pause(0.3)
        grid = form.query_one("#form-grid")
        assert body.region.height == min(16, grid.outer_size.height), (body.region, grid.region)


async def test_each_bad_field_shows_its_own_error_under_it_in_view(tmp_path: Path) -> None:
    """The logical restore form said its errors only as one block at its foot, the first one
    build_request met: a bad Port, Parallel and Bandwidth cap took three tries, and the field
    in error could be below the fold at 80x24. As the new-backup form, each field checked by
    the command line's parser now says its error under it, Start is refused with every error
    shown, and the first field in error has the focus, in view."""
    app = make_app(str(tmp_path / "state"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, loaded(app), timeout=30)
        form = LogicalRestoreScreen(REF, Target(), str(tmp_path / "state"))
        app.push_screen(form)
        await settle(pilot, lambda: form.is_mounted and bool(form.query("#all_databases")))
        form.query_one("#database", Input).value = "appdb"
        bad = {"port": "70000", "jobs": "0", "bandwidth": "fast"}
        for field, value in bad.items():
            form.query_one(f"#{field}", Input).value = value
        form.set_focus(form.query_one("#database", Input))
        await pilot.press("ctrl+s")
        status = form.query_one("#form-status", Static)
        await settle(pilot, lambda: "Fix the fields" in str(status.render()))
        said = {field: str(form.query_one(f"#{field}-error").render()) for field in bad}
        assert "65535" in said["port"], said
        assert "jobs" in said["jobs"] or "1" in said["jobs"], said
        assert "fast" in said["bandwidth"], said
        for field in bad:
            assert form.query_one(f"#{field}-error").display, field
        port = form.query_one("#port", Input)
        assert form.focused is port
        await pilot.pause(0.3)
        body = form.query_one("#form-body")
        assert body.region.contains_region(port.region), (body.region, port.region)
        assert not form.query_one("#host-error").display  # a field without error says nothing

        # Fixed, its error goes as it is typed; an empty Backup is said under Backup.
        port.value = "5433"
        await pilot.pause(0.2)
        assert not form.query_one("#port-error").display
        form.query_one("#backup", Input).value = ""
        await pilot.pause(0.2)
        assert "name the backup" in str(form.query_one("#backup-error").render())
