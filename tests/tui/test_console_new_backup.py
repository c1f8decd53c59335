"""The new backup form's prefill points where the last backup went (Pilot).

Found in tmux: after a backup to an S3-compatible endpoint (moto), `n` prefilled
Destination with the job's display URL, `s3://pgbackups/pg`, which has no AWS_ENDPOINT:
ctrl+s started a backup of the same server against AWS itself.
"""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Checkbox, Input, Select

from core.backup.job import BACKUP
from core.backup.request import make_backup_request
from core.catalog.chains import FULL
from core.jobs import JobState, JobStore
from core.logical.jobs import LOGICAL_BACKUP
from core.logical.request import LogicalBackupRequest
from core.postgres.connection import ConnectionParams
from core.urls import parse_location
from tests.support.console import loaded, make_app, settle
from tui.modals.new_backup import LOGICAL, NewBackupScreen, conninfo_with_password

ENDPOINT = "http://127.0.0.1:9"  # never contacted: the form only reads and builds
SECRET = "SECRETCANARY0123456789"
URL = f"s3://pgbackups/pg?AWS_ENDPOINT={ENDPOINT}&AWS_ACCESS_KEY_ID=AKIAX&AWS_SECRET_ACCESS_KEY={SECRET}"


def record_backup_job(state_dir: str, url: str) -> None:
    location = parse_location(url)
    request = make_backup_request(location, "pgs3")
    with JobStore.open(state_dir) as store:
        job = store.create(
            "backup",
            description=f"backup of pgs3 to {location.display()}",
            server="pgs3",
            destination=location.display(),
            options=BACKUP.options(request),
        )
        store.transition(job.id, JobState.FAILED, error="lost")


async def open_form(state_dir: str, *destinations: str) -> tuple[str, str | None]:
    app = make_app(state_dir, *destinations)
    async with app.run_test(size=(100, 34)) as pilot:
        await settle(pilot, loaded(app), timeout=30)
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, NewBackupScreen))
        form = app.screen
        assert isinstance(form, NewBackupScreen)
        shown = form.query_one("#destination", Input).value
        request = form.build_request()
        return shown, request.location.endpoint


async def test_the_form_prefills_the_last_backups_endpoint_without_its_keys(
    tmp_path: Path,
) -> None:
    state_dir = str(tmp_path / "state")
    record_backup_job(state_dir, URL)
    shown, endpoint = await open_form(state_dir)
    assert shown.startswith("s3://pgbackups/pg?") and "AWS_ENDPOINT=" in shown, shown
    assert endpoint == ENDPOINT
    assert SECRET not in shown and "AKIAX" not in shown


async def test_the_destinations_offered_keep_their_endpoint(tmp_path: Path) -> None:
    """The catalog's destinations the Destination field suggests: with the endpoint."""
    state_dir = str(tmp_path / "state")
    app = make_app(state_dir, URL)
    async with app.run_test(size=(100, 34)) as pilot:
        await settle(pilot, loaded(app), timeout=30)
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, NewBackupScreen))
        form = app.screen
        assert isinstance(form, NewBackupScreen)
        offered = form.defaults.destinations
    s3 = [url for url in offered if url.startswith("s3://")]
    assert s3 and all(f"AWS_ENDPOINT={ENDPOINT}" in url for url in s3), offered
    assert all(SECRET not in url for url in offered)


async def test_a_backup_taken_with_a_password_prefills_the_database_name(
    tmp_path: Path,
) -> None:
    """Seen in tmux: after a backup with a Password, Database read `dbname='postgres'` (the
    conninfo the form built, less its password): with a Password typed again the form
    refused it, and a logical backup could not take it as a name."""
    state_dir = str(tmp_path / "state")
    request = make_backup_request(
        parse_location("file:///tmp/pgvault-console-tests/b"),
        "pg1",
        connection=ConnectionParams(host="/tmp", dbname=conninfo_with_password("shop", SECRET)),
    )
    with JobStore.open(state_dir) as store:
        job = store.create("backup", server="pg1", options=BACKUP.options(request))
        store.transition(job.id, JobState.FAILED, error="lost")
        recorded = store.get(job.id).options["connection"]["dbname"]
    assert SECRET not in recorded and recorded != "shop"  # what the store keeps
    app = make_app(state_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        await settle(pilot, loaded(app), timeout=30)
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, NewBackupScreen))
        assert app.screen.query_one("#dbname", Input).value == "shop"


async def test_field_errors_are_shown_whole_under_the_field_being_typed(tmp_path: Path) -> None:
    """Seen in tmux at 80x24: Destination's error "unsupported URL scheme '' in 'foo' (use
    s3://, gs://, ..." was cut at the dialog's border (a Label is as wide as its text), and
    with errors shown above it the field being typed in (Tags) sat below the form's fold.
    "invalid server name 'bad/name'" did not say what a server name may be."""
    app = make_app(str(tmp_path / "state"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, loaded(app), timeout=30)
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, NewBackupScreen))
        form = app.screen
        assert isinstance(form, NewBackupScreen)
        form.query_one("#server", Input).value = "bad/name"
        form.query_one("#destination", Input).value = "foo"
        for field, value in (("port", "abc"), ("jobs", "0"), ("bandwidth", "fast")):
            form.query_one(f"#{field}", Input).value = value
        await pilot.pause(0.2)
        error = form.query_one("#destination-error")
        said = str(error.render())
        assert said.endswith("or file://)"), said
        field = form.query_one("#destination", Input)
        assert error.region.right <= field.region.right, (error.region, field.region)
        assert error.region.height >= 2  # wrapped, whole
        assert "e.g. pg-main" in str(form.query_one("#server-error").render())

        tags = form.query_one("#tags", Input)
        form.set_focus(tags)
        await pilot.press("a")  # an error under Tags too
        await pilot.pause(0.3)
        body = form.query_one("#form-body")
        tags_error = form.query_one("#tags-error")
        assert tags_error.display
        assert body.region.contains_region(tags.region), (body.region, tags.region)
        assert body.region.contains_region(tags_error.region), tags_error.region


async def test_a_logical_kind_hides_the_checkpoint_option(tmp_path: Path) -> None:
    """Seen in tmux: Kind logical (pg_dump, which takes no checkpoint) still offered 'fast
    (immediate) checkpoint'. The option is hidden while Kind is logical, not sent, and back
    with its value when Kind is physical again."""
    state_dir = str(tmp_path / "state")
    record_backup_job(state_dir, "file:///srv/backups")
    app = make_app(state_dir)
    async with app.run_test(size=(100, 34)) as pilot:
        await settle(pilot, loaded(app), timeout=30)
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, NewBackupScreen))
        form = app.screen
        assert isinstance(form, NewBackupScreen)
        checkpoint = form.query_one("#immediate", Checkbox)
        assert checkpoint.display
        checkpoint.value = False
        form.query_one("#kind", Select).value = LOGICAL
        await pilot.pause(0.3)
        assert not checkpoint.display
        label = form.query_one("#immediate-label")
        assert not label.display
        form.query_one("#dbname", Input).value = "appdb"
        request = form.build_request()
        assert isinstance(request, LogicalBackupRequest)
        assert not any("checkpoint" in key for key in LOGICAL_BACKUP.options(request)), (
            LOGICAL_BACKUP.options(request)
        )
        form.query_one("#kind", Select).value = FULL
        await settle(pilot, lambda: checkpoint.display)
        assert label.display and checkpoint.value is False
        physical = form.build_request()
        assert not isinstance(physical, LogicalBackupRequest)
        assert physical.immediate_checkpoint is False
