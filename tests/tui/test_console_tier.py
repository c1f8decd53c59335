"""The catalog's TIER column: standard, archive (the backup's tier record, read with the
listing in the loader thread) or rehydrating (an active rehydrate job for it, from the job
feed). Backups are moved to the archive tier for real (a local destination's
`.pgvault-archive/`) by core.catalog.tier, as the agent's lifecycle does."""

from __future__ import annotations

from pathlib import Path

from core.catalog.backup_info import DONE
from core.catalog.tier import archive_backup
from core.jobs import JobState, JobStore
from core.jobs.results.details import JobDetails
from core.jobs.store import ProcessInfo
from core.progress import ProgressSnapshot
from core.storage import StoreConfig, open_store
from core.urls import parse_location
from tests.support.console import NOW, OTHER_HOST, loaded, make_app, settle
from tui.adapter import display_url
from tui.screens.catalog import CatalogScreen
from tui.widgets.table import ResponsiveTable

ARCHIVED, REHYDRATING, STAYS = "20260312T020000", "20260313T020000", "20260313T080000"


def rehydrate_job(state_dir: str, url: str, backup_id: str, state: JobState) -> None:
    """A rehydrate job of pg-main's backup as `backup-rehydrate` records it (on another host)."""
    with JobStore.open(state_dir) as jobs:
        job = jobs.create(
            "rehydrate",
            state=JobState.RUNNING,
            description=f"rehydrate of pg-main to {display_url(url)}",
            server="pg-main",
            destination=display_url(url),
            options={"server": "pg-main"},
            detached=True,
            process=ProcessInfo(pid=4242, host=OTHER_HOST, start=1),
        )
        snapshot = ProgressSnapshot(
            phase="rehydrating",
            bytes_done=0,
            bytes_total=None,
            files_done=0,
            files_total=2,
            rate=0.0,
            eta=None,
            started=NOW - 60,
            updated=NOW,
        )
        jobs.flush(job.id, snapshot, [], [], details=JobDetails(backup_id=backup_id))
        if state is not JobState.RUNNING:
            jobs.transition(job.id, state)


async def test_the_tier_column_shows_archived_and_rehydrating_backups(
    fixed_state: str, chain_catalog: str, tmp_path: Path
) -> None:
    with open_store(parse_location(chain_catalog), StoreConfig()) as store:
        for backup_id in (ARCHIVED, REHYDRATING):
            assert archive_backup(store, "pg-main", backup_id, DONE) == 1
    rehydrate_job(fixed_state, chain_catalog, REHYDRATING, JobState.RUNNING)
    # a finished rehydrate job of the other one says nothing about it now
    rehydrate_job(fixed_state, chain_catalog, ARCHIVED, JobState.FAILED)
    app = make_app(fixed_state, chain_catalog)
    async with app.run_test(size=(132, 30)) as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("2")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
        table = app.screen.query_one("#backups", ResponsiveTable)
        await settle(pilot, lambda: f"pg-main/{STAYS}" in table.keys)
        tiers = {key.split("/")[1]: table.get_cell(key, "tier").plain for key in table.keys}
        assert tiers[ARCHIVED] == "archive"
        assert tiers[REHYDRATING] == "rehydr"
        assert {tiers[k] for k in tiers if k not in (ARCHIVED, REHYDRATING)} == {"std"}
        assert len(tiers) == 6

        table.focus()
        assert table.select_key(f"pg-main/{ARCHIVED}")
        await pilot.pause(0.1)
        summary = str(app.screen.query_one("#backup-summary").render())
        assert "in the archive tier: rehydrate before a restore" in summary
        assert table.select_key(f"pg-main/{STAYS}")
        await pilot.pause(0.1)
        assert "archive tier" not in str(app.screen.query_one("#backup-summary").render())
        assert table.select_key(f"pg-main/{REHYDRATING}")
        await pilot.pause(0.1)
        summary = str(app.screen.query_one("#backup-summary").render())
        assert "rehydrating: a rehydrate job is bringing it back" in summary
        # at 132 columns TIER fits beside KIND (narrower, it gives way first)
        shown = [str(column.key.value) for column in table.columns.values()]
        assert shown == ["server", "backup", "status", "kind", "tier", "begin", "size"]

    # narrow (80 columns) the column gives way to STORED; the summary still says it
    app = make_app(fixed_state, chain_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("2")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
        table = app.screen.query_one("#backups", ResponsiveTable)
        await settle(pilot, lambda: f"pg-main/{STAYS}" in table.keys)
        assert "tier" not in [str(column.key.value) for column in table.columns.values()]
        # BEGIN (what an ID says) gave way too: the chain's IDs, under their tree, are whole
        shown = [str(column.key.value) for column in table.columns.values()]
        assert shown == ["backup", "status", "size"]
        backup_width = next(c.width for c in table.columns.values() if c.key.value == "backup")
        for key in table.keys:
            backup_id, plain = key.split("/")[1], table.get_cell(key, "backup").plain
            assert plain.index(backup_id) + len(backup_id) <= backup_width, plain
        table.focus()
        assert table.select_key(f"pg-main/{ARCHIVED}")
        await pilot.pause(0.1)
        summary = str(app.screen.query_one("#backup-summary").render())
        assert "in the archive tier: rehydrate before a restore" in summary
