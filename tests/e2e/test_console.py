"""The console against a real PostgreSQL: a backup started from the form, paused, resumed and
cancelled with its keys; a finished backup browsed down to its tables and its WAL, and
restored from the catalog's restore form into a directory PostgreSQL then starts on.

The app runs headless (Pilot) in this process; the backups run as real detached job
processes, as they do when an operator starts them from the console.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Input, Select

from core.catalog.backup_info import DONE
from core.catalog.reader import Catalog
from core.jobs import JobState, JobStore
from core.jobs.results import RestoreJobResult
from core.storage import open_store
from core.urls import parse_location
from tests.support.console import settle
from tests.support.jobs import pgvault
from tests.support.pitr import new_target, restored_server
from tests.support.postgres import Cluster, make_cluster, wait_for_recovery_end, world_dir
from tests.support.sample import checksums, populate
from tests.support.wal import archive_command
from tui.app import PgvaultApp
from tui.config import ConsoleConfig
from tui.modals.confirm import ConfirmScreen
from tui.modals.new_backup import NewBackupScreen
from tui.modals.restore import RestoreScreen
from tui.screens.backup import BackupScreen
from tui.screens.catalog import CatalogScreen
from tui.screens.jobs import JobsScreen
from tui.screens.wal import WalScreen
from tui.widgets.table import ResponsiveTable

SERVER = "pg15"


@pytest.fixture(scope="module")
def destination() -> Iterator[str]:
    root = world_dir("pgvault-console-dest-")
    yield f"file://{root}"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def source(pgvault_bin: str, destination: str) -> Iterator[Cluster]:
    """A cluster with sample data whose WAL pgvault archives into the destination."""
    cluster = make_cluster(archive_command=archive_command(pgvault_bin, destination, server=SERVER))
    try:
        populate(cluster, rows=60_000)
        yield cluster
    finally:
        cluster.drop()


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # The console also lists the default destination under XDG_DATA_HOME: a private one,
    # so that no other run's servers come first in the catalog's tree.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("PGVAULT_DEMO_DIR", str(tmp_path / "demo"))
    return str(tmp_path / "state")


def console(state_dir: str, destination: str) -> PgvaultApp:
    return PgvaultApp(ConsoleConfig(state_dir=state_dir, destinations=(destination,)))


def job_state(state_dir: str, job_id: int) -> JobState:
    with JobStore.open(state_dir) as store:
        return store.get(job_id).state


def bytes_done(state_dir: str, job_id: int) -> int:
    with JobStore.open(state_dir) as store:
        return store.get(job_id).bytes_done


async def test_a_backup_from_the_form_is_paused_resumed_and_cancelled(
    source: Cluster, destination: str, state_dir: str, tmp_path: Path
) -> None:
    app = console(state_dir, destination)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, lambda: app.state.jobs_loaded)
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, NewBackupScreen))
        form = app.screen
        form.query_one("#server", Input).value = ""
        form.query_one("#server", Input).focus()
        await pilot.press(*SERVER)
        values = {
            "destination": destination,
            "host": source.sock,
            "port": str(source.port),
            "user": "postgres",
            "bandwidth": "1MB",  # slow enough to pause, resume and cancel it mid-way
        }
        for field, value in values.items():
            form.query_one(f"#{field}", Input).value = value
        form.query_one("#compression", Select).value = "lz4"
        await pilot.pause(0.2)
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)

        # It appears, selected, and runs.
        await settle(pilot, lambda: bool(app.state.jobs), timeout=10)
        job_id = max(app.state.jobs)
        table = app.screen.query_one("#jobs", ResponsiveTable)
        await settle(pilot, lambda: table.current_key == str(job_id))
        await settle(
            pilot,
            lambda: (
                app.state.jobs[job_id].state is JobState.RUNNING
                and app.state.jobs[job_id].bytes_done > 0
            ),
            timeout=60,
        )
        assert table.get_cell(str(job_id), "state").plain == "running"
        sessions = "select count(*) from pg_stat_activity where application_name like 'pgvault%'"
        assert source.one(sessions) >= 1

        # p pauses: the job's process acknowledges, and nothing more is read.
        await pilot.press("p")
        await settle(pilot, lambda: job_state(state_dir, job_id) is JobState.PAUSED, timeout=15)
        await settle(pilot, lambda: table.get_cell(str(job_id), "state").plain == "paused")
        before = bytes_done(state_dir, job_id)
        await pilot.pause(2.5)
        assert bytes_done(state_dir, job_id) == before

        # p resumes.
        await pilot.press("p")
        await settle(pilot, lambda: job_state(state_dir, job_id) is JobState.RUNNING, timeout=15)
        await settle(pilot, lambda: bytes_done(state_dir, job_id) > before, timeout=15)

        # C asks; y cancels.
        await pilot.press("C")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await settle(pilot, lambda: job_state(state_dir, job_id) is JobState.CANCELLED, timeout=30)
        await settle(pilot, lambda: table.get_cell(str(job_id), "state").plain == "cancelled")

    # Nothing restorable was left behind, and the job outlived nothing it should not have.
    with open_store(parse_location(destination)) as store:
        statuses = {b.status for b in Catalog(store, SERVER).backups()}
    assert DONE not in statuses
    # The backup session ended (PostgreSQL out of backup mode with it).
    deadline = time.monotonic() + 10
    while source.one(sessions):
        assert time.monotonic() < deadline, "pgvault's backup session is still open"
        time.sleep(0.2)


async def test_the_catalog_shows_a_finished_backup_with_its_tables_and_wal(
    source: Cluster, destination: str, state_dir: str
) -> None:
    done = pgvault(
        state_dir,
        "backup",
        "--immediate-checkpoint",
        "--zstd",
        *source.conninfo_args(),
        destination,
        SERVER,
        check=True,
        timeout=300,
    )
    backup_id = done.stdout.strip()
    app = console(state_dir, destination)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, lambda: app.state.jobs_loaded)
        # The batch backup is a job the console shows, finished.
        assert [j.state for j in app.state.jobs.values()] == [JobState.SUCCEEDED]
        await pilot.press("2")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
        catalog = app.screen
        await settle(
            pilot,
            lambda: f"{SERVER}/{backup_id}" in catalog.query_one("#backups", ResponsiveTable).keys,
            timeout=30,
        )
        table = catalog.query_one("#backups", ResponsiveTable)
        table.focus()
        assert table.select_key(f"{SERVER}/{backup_id}")
        assert table.get_cell(f"{SERVER}/{backup_id}", "status").plain == DONE
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, BackupScreen))
        detail = app.screen
        assert isinstance(detail, BackupScreen)
        await settle(pilot, lambda: detail.loaded and detail.wal_checked, timeout=30)
        tables = detail.query_one("#tables", ResponsiveTable)
        names = {tables.get_cell(key, "table").plain for key in tables.keys}
        assert {"accounts", "blobs", "orders", "rich"} <= names
        databases = detail.query_one("#databases", ResponsiveTable)
        assert {"postgres", "sales"} <= set(databases.keys)
        wal = str(detail.query_one("#backup-wal").render())
        assert "complete" in wal, wal

        await pilot.press("escape", "3")
        await settle(pilot, lambda: isinstance(app.screen, WalScreen))
        wal_view = app.screen
        assert isinstance(wal_view, WalScreen)
        await settle(pilot, lambda: bool(wal_view.archives), timeout=30)
        archive = next(iter(wal_view.archives.values()))
        assert archive.segments > 0 and not [c for c in archive.coverage if c.missing]
        coverage = wal_view.query_one("#wal-coverage", ResponsiveTable)
        assert coverage.get_cell(backup_id, "state").plain in ("complete", "PITR gap")


async def test_a_backup_restored_from_the_console_starts_with_the_same_tables(
    source: Cluster, destination: str, state_dir: str
) -> None:
    done = pgvault(
        state_dir,
        "backup",
        "--immediate-checkpoint",
        "--lz4",
        *source.conninfo_args(),
        destination,
        SERVER,
        check=True,
        timeout=300,
    )
    backup_id = done.stdout.strip()
    expected = checksums(source)
    target = new_target()
    app = console(state_dir, destination)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot, lambda: app.state.jobs_loaded)
            await pilot.press("2")
            await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
            table = app.screen.query_one("#backups", ResponsiveTable)
            key = f"{SERVER}/{backup_id}"
            await settle(pilot, lambda: key in table.keys, timeout=30)
            table.focus()
            assert table.select_key(key)
            await pilot.press("r")
            await settle(pilot, lambda: isinstance(app.screen, RestoreScreen))
            form = app.screen
            form.query_one("#directory", Input).value = target.data
            # On the same host the source's tablespaces are in use: relocate them.
            assert source.tablespaces
            form.query_one("#tablespaces", Input).value = " ".join(
                f"{name}:{target.base}/{name}" for name in source.tablespaces
            )
            await pilot.press("ctrl+s")
            await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
            job_id = max(app.state.jobs)
            assert app.state.jobs[job_id].kind == "restore"
            await settle(pilot, lambda: app.state.jobs[job_id].final, timeout=300)
            assert app.state.jobs[job_id].state is JobState.SUCCEEDED, app.state.jobs[job_id].error
            assert app.state.jobs[job_id].result_as(RestoreJobResult).backup_id == backup_id
        with restored_server(target, source.bindir) as server:
            wait_for_recovery_end(server)
            assert checksums(server) == expected
    finally:
        target.drop()
