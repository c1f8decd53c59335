"""What a job's progress and rates read once it stopped moving: a job that ended without
succeeding never reads as complete, and a paused job sends nothing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from textual.widgets import Static

from core.jobs import JobState
from tests.support.console import ROWS, fill_store, loaded, make_app, settle
from tui.screens.job_detail import JobDetailScreen
from tui.widgets.progress import ProgressLine
from tui.widgets.table import ResponsiveTable

MiB = 1024 * 1024


def _plain(widget: ProgressLine | Static) -> str:
    return str(widget.render())


async def _shows(tmp_path: Path, row: object) -> tuple[str, str, str, str]:
    """(the table's PROGRESS cell, its RATE cell, the jobs view's bar, the detail's bar and
    facts) for a store of that one row."""
    state = str(tmp_path / "state")
    (job_id,) = fill_store(state, (row,))  # type: ignore[arg-type]
    app = make_app(state)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, loaded(app))
        table = app.screen.query_one("#jobs", ResponsiveTable)
        cell = table.get_cell(str(job_id), "progress").plain
        rate = table.get_cell(str(job_id), "rate").plain
        bar = _plain(app.screen.query_one("#selected-bar", ProgressLine))
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, JobDetailScreen))
        await pilot.pause(0.3)
        detail = _plain(app.screen.query_one("#detail-bar", ProgressLine))
        facts = _plain(app.screen.query_one("#detail-facts"))  # type: ignore[arg-type]
    return cell, rate, bar, detail + "\n" + facts


async def test_a_backup_that_failed_after_its_last_byte_does_not_read_as_complete(
    tmp_path: Path,
) -> None:
    """Seen in tmux: a backup that failed waiting for its WAL, every byte of its data sent,
    read '100%' with a full bar in the table, under it and in its detail."""
    failed = replace(ROWS[3], bytes_done=4_096 * MiB, phase="waiting for WAL")
    cell, _rate, bar, detail = await _shows(tmp_path, failed)
    for shown in (cell, bar, detail):
        assert "100%" not in shown, shown
        assert " 99%" in shown, shown
        assert "░" in shown, shown  # the bar is not full


async def test_a_cancelled_job_shows_the_progress_it_reached(tmp_path: Path) -> None:
    cancelled = replace(ROWS[4], bytes_done=5_118 * MiB)  # 99.96 %
    cell, _rate, bar, detail = await _shows(tmp_path, cancelled)
    for shown in (cell, bar, detail):
        assert "100%" not in shown and " 99%" in shown, shown


async def test_a_succeeded_job_still_reads_100(tmp_path: Path) -> None:
    cell, _rate, bar, detail = await _shows(tmp_path, ROWS[2])
    for shown in (cell, bar, detail):
        assert "100%" in shown and "░" not in shown.split("\n")[0], shown


async def test_a_paused_job_shows_no_rate(tmp_path: Path) -> None:
    """Seen in tmux: a job paused a few seconds ago showed a 'sent' rate fading over the
    seconds after the pause, and the table its last read rate; a paused job sends nothing."""
    paused = replace(ROWS[1], rate=21.0 * MiB, samples=tuple(22.0 * MiB for _ in range(60)))
    assert paused.state is JobState.PAUSED
    _cell, rate, _bar, detail = await _shows(tmp_path, paused)
    assert rate == "paused"
    facts = detail.split("\n", 1)[1]
    assert "MiB/s" not in facts, facts
    assert "read     paused" in facts and "sent     paused" in facts, facts
