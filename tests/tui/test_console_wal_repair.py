"""`A` on the WAL view: the gap repair form starts a real wal-repair job (a worker process).

The fixed catalog's archive lacks segments 25..27 of timeline 1. A data directory without
pg_wal is refused by the form before any job is recorded; an empty pg_wal starts the job,
which finds none of the segments and records the range as lost.
"""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Label, Static

from core.jobs import Job, JobFilter, JobState, JobStore
from core.jobs.results import WalRepairJobResult
from tests.support.console import loaded, make_app, settle
from tui.app import PgvaultApp
from tui.modals.wal_repair import RepairDefaults, WalRepairScreen, repair_defaults
from tui.screens.jobs import JobsScreen
from tui.screens.wal import WalScreen
from tui.widgets.table import ResponsiveTable

HOLE = ("000000010000000000000025", "000000010000000000000027")


def repair_jobs(state_dir: str) -> list[Job]:
    with JobStore.open(state_dir) as store:
        return store.list_jobs(JobFilter(kinds=("wal-repair",)))


async def open_wal(app: PgvaultApp, pilot: object) -> WalScreen:
    await settle(pilot, loaded(app))  # type: ignore[arg-type]
    await pilot.press("3")  # type: ignore[attr-defined]
    await settle(
        pilot,  # type: ignore[arg-type]
        lambda: isinstance(app.screen, WalScreen) and bool(app.screen.archives),
    )
    screen = app.screen
    assert isinstance(screen, WalScreen)
    return screen


async def test_a_starts_the_repair_job_and_a_missing_segment_is_reported_lost(
    fixed_state: str, fixed_catalog: str, tmp_path: Path
) -> None:
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(120, 36)) as pilot:
        wal = await open_wal(app, pilot)
        (archive,) = wal.archives.values()
        (gap,) = archive.gaps
        assert (gap.first_missing, gap.last_missing) == HOLE
        ranges = wal.query_one("#wal-ranges", ResponsiveTable)
        assert "g0" in ranges.keys
        assert "A" in {b.binding.key for b in app.screen.active_bindings.values()}

        await pilot.press("A")
        await settle(pilot, lambda: isinstance(app.screen, WalRepairScreen))
        form = app.screen
        form.query_one("#pgdata", Input).value = str(tmp_path)  # no pg_wal in it
        await pilot.press("ctrl+s")
        error = form.query_one("#pgdata-error", Label)
        # Under the field it is about (it said so in the status line only).
        await settle(pilot, lambda: "not a PostgreSQL data directory" in str(error.render()))
        assert error.display and form.focused is form.query_one("#pgdata")
        assert repair_jobs(fixed_state) == []  # refused before any job was recorded

        (tmp_path / "pg_wal").mkdir()
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
        await settle(pilot, lambda: len(repair_jobs(fixed_state)) == 1)
        await settle(pilot, lambda: repair_jobs(fixed_state)[0].final, timeout=60)
        (job,) = repair_jobs(fixed_state)
        assert job.state is JobState.SUCCEEDED, job.error
        assert job.server == "pg-main" and job.options.get("pgdata") == str(tmp_path)
        result = job.result_as(WalRepairJobResult)
        assert (result.missing, result.repaired) == (3, ())
        (line,) = result.lost
        assert line.startswith(f"lost: timeline 1 WAL 0/25000000 to 0/28000000 ({HOLE[0]}")


async def test_read_only_has_no_repair_key(fixed_state: str, fixed_catalog: str) -> None:
    app = make_app(fixed_state, fixed_catalog, read_only=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_wal(app, pilot)
        actions = {b.binding.action for b in app.screen.active_bindings.values()}
        assert "repair_wal" not in actions
        await pilot.press("A")
        await pilot.pause(0.3)
        assert isinstance(app.screen, WalScreen)


async def test_a_port_that_is_no_number_is_refused_in_the_form(
    fixed_state: str, fixed_catalog: str
) -> None:
    """Seen in tmux: Port `abc` started a wal-repair job that failed at once ("invalid
    integer value "abc" for connection option "port""); the form says so, under Port (it
    said it in the status line only), as the other job forms do, and records no job."""
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_wal(app, pilot)
        await pilot.press("A")
        await settle(pilot, lambda: isinstance(app.screen, WalRepairScreen))
        form = app.screen
        form.query_one("#pgdata", Input).value = ""
        form.query_one("#port", Input).value = "abc"
        error = form.query_one("#port-error", Label)
        await settle(pilot, lambda: "from 1 to 65535" in str(error.render()))  # as typed
        await pilot.press("ctrl+s")
        status = form.query_one("#form-status", Static)
        await settle(pilot, lambda: "Fix the fields" in str(status.render()))
        assert error.display and form.focused is form.query_one("#port")
        await pilot.pause(0.5)
        assert isinstance(app.screen, WalRepairScreen)
        assert repair_jobs(fixed_state) == []


def test_an_agent_backups_conninfo_prefills_the_repair_forms_fields() -> None:
    """Seen in tmux: after a backup the protection agent (or adhoc-backup) took, the repair
    form's Database field held the instance's whole datasource conninfo ("user=postgres
    dbname=postgres host=/tmp/x port=55436") and Host and Port were empty. The fields now
    get its parts; a password in it is never shown."""
    conninfo = "user=postgres dbname=appdb host=/tmp/sock port=55436 password=s3cret"
    job = Job(
        id=7,
        kind="backup",
        state=JobState.SUCCEEDED,
        server="pg-main",
        options={"connection": {"dbname": conninfo, "host": None, "port": None, "user": None}},
    )
    assert repair_defaults([job], "pg-main") == RepairDefaults(
        "/tmp/sock", "55436", "postgres", "appdb"
    )
    # Fields given on their own still win over the conninfo's.
    job = Job(
        id=8,
        kind="backup",
        state=JobState.SUCCEEDED,
        server="pg-main",
        options={"connection": {"dbname": "appdb", "host": "db1", "port": "5433", "user": "u"}},
    )
    assert repair_defaults([job], "pg-main") == RepairDefaults("db1", "5433", "u", "appdb")
