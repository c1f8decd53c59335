"""One vocabulary in both faces, whole at 80 columns, and rates that say what they count."""

from __future__ import annotations

import html
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from textual.widgets import Static, Tree

from core.jobs import JobState, JobStore
from tests.support.console import NOW, ROWS, MiB, fill_store, loaded, make_app, settle
from tests.support.jobs import PGVAULT
from tui import fmt
from tui.app import PgvaultApp
from tui.modals.help import HelpScreen
from tui.screens.catalog import CatalogScreen
from tui.screens.job_detail import JobDetailScreen
from tui.widgets.table import ResponsiveTable

TEXT_RUN = re.compile(r'<text[^>]*clip-path="url\(#terminal-\d+-line-(\d+)\)"[^>]*>(.*?)</text>')


def screen_lines(app: PgvaultApp) -> list[str]:
    """The screen as an operator reads it: the screenshot's text runs, line by line."""
    lines: dict[int, str] = {}
    for number, run in TEXT_RUN.findall(app.export_screenshot()):
        lines[int(number)] = lines.get(int(number), "") + html.unescape(run).replace("\xa0", " ")
    return [lines[n] for n in sorted(lines)]


def jobs_command(state: str, *args: str) -> str:
    """What `pgvault --batch ARGS` prints on that job store."""
    command = [PGVAULT, "--state-dir", state, "--batch", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


#: a restore beside the fixed backups: its kind is the one 80 columns used to cut
RESTORE = replace(ROWS[0], kind="restore", server="pg-main", state=JobState.SUCCEEDED, took=60.0)


async def test_the_jobs_view_says_what_jobs_list_says_whole_at_80_columns(
    tmp_path: Path,
) -> None:
    state = str(tmp_path / "state")
    ids = fill_store(state, (*ROWS, RESTORE))
    with JobStore.open(state) as store:  # the widest state, for a moment: still whole
        store.request_cancel(ids[0])
    listed = jobs_command(state, "jobs", "list")
    batch = {line.split()[0]: line.split()[3] for line in listed.splitlines()[1:]}
    app = make_app(state)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, loaded(app))
        table = app.screen.query_one("#jobs", ResponsiveTable)
        console = {str(i): table.get_cell(str(i), "state").plain for i in ids}
        assert console == batch
        assert {"succeeded", "cancel-requested", "failed"} <= set(console.values())
        kinds = {table.get_cell(str(i), "kind").plain for i in ids}
        assert kinds == {"backup", "restore"}
        screen = "\n".join(screen_lines(app))
        assert " restore " in screen and "restor " not in screen.replace("restore ", "")
        widths = dict(table._layout)
        assert widths["state"] >= len("cancel-requested") and widths["kind"] >= len("restore")


async def test_the_rates_are_named_data_and_wire(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    capped = replace(ROWS[0], rate=30 * MiB, samples=tuple(8 * MiB for _ in range(60)))
    fill_store(state, (capped,))
    app = make_app(state)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, loaded(app))
        screen = "\n".join(screen_lines(app))
        assert "DATA RATE" in screen and "wire 8.0 MiB/s" in screen
        assert "read 30.0 MiB/s" in screen
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, JobDetailScreen))
        await settle(pilot, lambda: bool(app.screen.samples))
        await pilot.pause(0.6)
        screen = "\n".join(screen_lines(app))
        assert re.search(r"read +30\.0 MiB/s", screen) and re.search(r"sent +8\.0 MiB/s", screen)
        assert "on the wire, last" in screen


@pytest.mark.parametrize("columns", [80, 120])
async def test_a_rate_of_three_digits_reads_whole_in_the_data_rate_column(
    tmp_path: Path, columns: int
) -> None:
    # Found in tmux at 120 columns: "675.7 KiB/s" (11 characters) showed as "675.7 KiB/" in
    # the 10-cell DATA RATE column, as would any backup between 100 and 1023.9 MiB/s.
    state = str(tmp_path / "state")
    slow = replace(ROWS[0], rate=675.7 * 1024)
    fill_store(state, (slow, replace(ROWS[0], server="pg-other", rate=150.2 * MiB)))
    app = make_app(state)
    async with app.run_test(size=(columns, 30)) as pilot:
        await settle(pilot, loaded(app))
        screen = "\n".join(screen_lines(app))
        assert re.search(r" 676 KiB/s ", screen), screen
        assert re.search(r" 150 MiB/s ", screen), screen


def test_a_table_rate_keeps_three_significant_digits_in_ten_cells() -> None:
    assert fmt.rate_cell(7.44 * MiB) == "7.4 MiB/s"
    assert fmt.rate_cell(99.94 * MiB) == "99.9 MiB/s"
    assert fmt.rate_cell(675.7 * 1024) == "676 KiB/s"
    assert fmt.rate_cell(1023.9 * MiB) == "1024 MiB/s"
    assert fmt.rate_cell(999) == "999 B/s"
    assert fmt.rate_cell(0) == "-"
    assert all(len(fmt.rate_cell(n * 1.37)) <= 10 for n in range(0, 1 << 42, 1 << 25))


def test_rates_of_a_restore_are_written_and_received() -> None:
    assert fmt.job_rates("restore", 4 * MiB, 2 * MiB) == "written 4.0 MiB/s · received 2.0 MiB/s"
    assert fmt.wire_now([], NOW) == 0.0


async def test_the_help_names_the_keymap_file_this_console_reads(
    fixed_state: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    app = make_app(fixed_state)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        texts = " ".join(str(w.content) for w in app.screen.query(".help-text"))
        assert f"Keys can be changed in {tmp_path}/xdg/pgvault/keymap.toml" in texts
        assert "~/.config/pgvault" not in texts


async def test_the_catalog_names_its_destination_whole_and_marks_the_focused_pane(
    fixed_state: str, fixed_catalog: str
) -> None:
    app = make_app(fixed_state, fixed_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
        await settle(pilot, loaded(app))
        catalog = app.screen
        tree = catalog.query_one("#destinations", Tree)
        await settle(pilot, lambda: fixed_catalog in "\n".join(screen_lines(app)))
        # The tree cuts a long directory; the pane beside it names the one highlighted whole.
        assert str(catalog.query_one("#catalog-where", Static).content).startswith(fixed_catalog)
        assert tree.has_focus and tree.styles.border_right[0] == "thick"
        await pilot.press("tab")
        table = catalog.query_one("#backups", ResponsiveTable)
        await settle(pilot, lambda: table.has_focus)
        await pilot.pause(0.2)
        assert tree.styles.border_right[0] == "solid"
        header = table.get_component_styles("datatable--header")
        assert header.text_style.reverse


def test_jobs_show_names_both_rates(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    capped = replace(ROWS[0], rate=30 * MiB, samples=tuple(8 * MiB for _ in range(60)))
    (job_id,) = fill_store(state, (capped,))
    shown = jobs_command(state, "jobs", "show", str(job_id))
    assert re.search(r"^read rate +30\.0 MiB/s$", shown, re.M), shown
    assert re.search(r"^sent rate +8\.0 MiB/s$", shown, re.M), shown
    listed = jobs_command(state, "jobs", "list")
    assert "DATA RATE" in listed.splitlines()[0]


async def test_a_finished_job_shows_its_mean_data_rate_in_both_faces(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    # 60 s for 3 GiB: 51.2 MiB/s over the whole run, whatever its last smoothed rate said.
    done = replace(RESTORE, bytes_done=3 * 1024 * MiB, rate=5 * MiB, took=60.0)
    (job_id,) = fill_store(state, (done,))
    shown = jobs_command(state, "jobs", "show", str(job_id))
    assert re.search(r"^written rate +51\.2 MiB/s mean$", shown, re.M), shown
    assert re.search(r"^received rate +-$", shown, re.M), shown
    app = make_app(state)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, JobDetailScreen))
        await pilot.pause(0.2)
        assert any("written  51.2 MiB/s mean" in line for line in screen_lines(app))


async def test_a_job_that_ended_before_its_size_was_known_shows_a_dash(tmp_path: Path) -> None:
    """'?%' is for a running job whose total is not known yet; one that failed before it
    knew shows '-', in its row and in its bar."""
    state = str(tmp_path / "state")
    failed = replace(
        RESTORE, state=JobState.FAILED, bytes_done=0, bytes_total=None, error="target not empty"
    )
    sizing = replace(ROWS[0], bytes_done=0, bytes_total=None)
    failed_id, sizing_id = fill_store(state, (failed, sizing))
    app = make_app(state)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, loaded(app))
        table = app.screen.query_one("#jobs", ResponsiveTable)
        assert table.get_cell(str(sizing_id), "progress").plain.endswith("  ?%")
        progress = table.get_cell(str(failed_id), "progress").plain
        assert progress.endswith("   -") and "?" not in progress, progress
        await settle(pilot, lambda: table.select_key(str(failed_id)))
        await settle(pilot, lambda: "target not empty" in "\n".join(screen_lines(app)))
        assert not any("?%" in line for line in screen_lines(app)[-4:]), screen_lines(app)


def test_jobs_show_and_list_say_paused_and_never_100_for_a_failed_job(tmp_path: Path) -> None:
    """As the console (tests/tui/test_console_job_progress.py): a paused job's rates read
    'paused', not its last samples fading; a backup that failed after its last byte is not
    listed at 100%."""
    state = str(tmp_path / "state")
    paused = replace(ROWS[1], rate=21 * MiB, samples=tuple(22 * MiB for _ in range(60)))
    failed = replace(ROWS[3], bytes_done=ROWS[3].bytes_total or 0)
    paused_id, failed_id = fill_store(state, (paused, failed))
    shown = jobs_command(state, "jobs", "show", str(paused_id))
    assert re.search(r"^read rate +paused$", shown, re.M), shown
    assert re.search(r"^sent rate +paused$", shown, re.M), shown
    listed = {line.split()[0]: line for line in jobs_command(state, "jobs", "list").splitlines()}
    assert " paused " in listed[str(paused_id)].split("paused", 1)[1], listed
    assert "100%" not in listed[str(failed_id)] and " 99.9% " in listed[str(failed_id)], listed
    detail = jobs_command(state, "jobs", "show", str(failed_id))
    assert re.search(r"^progress +99\.9% ", detail, re.M), detail
