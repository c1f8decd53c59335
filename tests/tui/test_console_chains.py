"""Chains of incrementals in the console and `backup-list`: each under its parent, and the
chain a restore reads, on the fixed catalog with two incrementals and a differential
(tests.support.console.CHAIN_SPECS). Restoring chains is proven in tests/e2e/test_incremental.
"""

from __future__ import annotations

import json
import re

from core.catalog.chains import tree_lines
from tests.support.cli import pgvault
from tests.support.console import loaded, make_app, open_catalog_on, settle
from tui.screens.backup import BackupScreen
from tui.screens.catalog import CatalogScreen
from tui.widgets.table import ResponsiveTable

FULL_ID, INCR_ID, INCR2_ID, DIFF_ID = (
    "20260313T020000",
    "20260313T080000",
    "20260313T140000",
    "20260313T200000",
)


def test_tree_lines_put_each_backup_under_its_parent() -> None:
    pairs = [("c", "b"), ("a", None), ("b", "a"), ("d", "a"), ("e", None), ("f", "gone")]
    assert tree_lines(pairs) == [
        ("a", ""),
        ("b", "├─ "),
        ("c", "├─ "),  # on b: one level under the full backup, the parent told elsewhere
        ("d", "└─ "),
        ("e", ""),
        ("f", ""),  # its parent is not listed: a root, not dropped
    ]
    newest = [backup_id for backup_id, _ in tree_lines(pairs, newest_first=True)]
    assert newest == ["f", "e", "a", "b", "c", "d"]
    assert sorted(i for i, _ in tree_lines([("x", "y"), ("y", "x")])) == ["x", "y"]


async def test_catalog_rows_show_the_chain_under_its_full_backup(
    fixed_state: str, chain_catalog: str
) -> None:
    app = make_app(fixed_state, chain_catalog)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("2")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
        table = app.screen.query_one("#backups", ResponsiveTable)
        await settle(pilot, lambda: f"pg-main/{DIFF_ID}" in table.keys)
        rows = [
            (str(table.get_cell(key, "backup")), str(table.get_cell(key, "kind")))
            for key in table.keys
        ]
        assert rows == [
            ("20260314T020000", "full"),
            (FULL_ID + " before-upgrade", "full"),
            (f"├─ {INCR_ID}", "incr"),
            (f"├─ {INCR2_ID}", "incr"),
            (f"└─ {DIFF_ID}", "diff"),
            ("20260312T020000", "full"),
        ]

        table.focus()
        assert table.select_key(f"pg-main/{INCR2_ID}")
        await pilot.pause(0.1)
        summary = str(app.screen.query_one("#backup-summary").render())
        assert f"incremental on {INCR_ID}" in summary

        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, BackupScreen))
        chain = str(app.screen.query_one("#backup-chain").render())
        lines = chain.splitlines()
        assert "a restore reads 3 backups, 4.1 MiB stored" in lines[0]
        assert [line.split()[:3] for line in lines[1:]] == [
            [FULL_ID, "full", "3.3"],
            ["└─", INCR_ID, "incremental"],
            ["└─", INCR2_ID, "incremental"],
        ]
        assert "ended 2026-03-13 " in lines[3]


async def test_a_full_backup_shows_no_chain(fixed_state: str, chain_catalog: str) -> None:
    app = make_app(fixed_state, chain_catalog)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, loaded(app))
        await pilot.press("2")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
        table = app.screen.query_one("#backups", ResponsiveTable)
        await settle(pilot, lambda: f"pg-main/{FULL_ID}" in table.keys)
        table.focus()
        assert table.select_key(f"pg-main/{FULL_ID}")
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, BackupScreen))
        assert not app.screen.query("#backup-chain")


def test_backup_list_text_draws_the_tree_and_json_keeps_its_shape(chain_catalog: str) -> None:
    listed = pgvault("backup-list", chain_catalog, "pg-main")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    firsts = [re.split(r"(?<=T\d{6})", line)[0] for line in lines[1:]]  # the ID and its prefix
    assert firsts == [
        "20260312T020000",
        FULL_ID,
        f"├─ {INCR_ID}",
        f"├─ {INCR2_ID}",
        f"└─ {DIFF_ID}",
        "20260314T020000",
    ]
    assert lines[0].split()[-2:] == ["Parent", "Method"]
    as_json = json.loads(
        pgvault("backup-list", "--format", "json", chain_catalog, "pg-main").stdout
    )
    entries = {e["backup_id"]: e for e in as_json["backups_list"]}
    assert sorted(entries) == sorted([*firsts[:1], FULL_ID, INCR_ID, INCR2_ID, DIFF_ID, firsts[-1]])
    assert entries[DIFF_ID]["parent_backup_id"] == FULL_ID
    assert entries[DIFF_ID]["pgvault"]["kind"] == "differential"
    assert entries[INCR2_ID]["pgvault"]["chain"] == [FULL_ID, INCR_ID]


async def test_an_encrypted_incrementals_summary_shows_every_line_at_80x24(
    fixed_state: str, chain_catalog: str
) -> None:
    """Seen in tmux at 80x24: the summary under the table held four lines, so an encrypted
    backup's last one, "encrypted (age): locked; u unlocks it" (what the operator can do),
    was cut whenever the first line wrapped or the backup is an incremental."""
    from pathlib import Path

    from rich.text import Text
    from textual.widgets import Static

    base = Path(chain_catalog.removeprefix("file://")) / "pg-main" / "base" / INCR_ID
    for archive in base.glob("*.tar*"):
        archive.rename(f"{archive}.age")  # sealed, as the listing tells it: no key needed
    app = make_app(fixed_state, chain_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        catalog = await open_catalog_on(app, pilot, f"pg-main/{INCR_ID}")
        summary = catalog.query_one("#backup-summary", Static)
        await settle(pilot, lambda: "locked; u unlocks it" in str(summary.render()))
        await pilot.pause(0.2)
        text = Text(str(summary.render()))
        area = summary.content_region
        lines = text.wrap(app.console, area.width)
        assert "incremental on" in text.plain
        assert len(lines) <= area.height, (len(lines), area, text.plain)
