"""Keys an operator reads on the bottom line or in the help do what they say (Pilot).

Found by driving the console in tmux: `j`/`k`/`g`/`G` did nothing on the catalog's tree and
on the WAL view's server list (only on tables), and a filter being typed still showed `/`
and `?` in the bottom line although they type into the filter.
"""

from __future__ import annotations

from pathlib import Path

from textual.binding import Binding
from textual.command import CommandPalette
from textual.widgets import Input, OptionList, Tree

from core.jobs import JobState
from tests.support.console import (
    MiB,
    Row,
    fill_store,
    loaded,
    make_app,
    open_catalog_on,
    settle,
    write_catalog,
)
from tui.modals.help import HelpScreen
from tui.screens.catalog import CatalogScreen
from tui.screens.jobs import JobsScreen
from tui.screens.wal import WalScreen
from tui.widgets.keybar import KeyBar
from tui.widgets.table import ResponsiveTable


def two_servers(console_world: Path) -> str:
    write_catalog(console_world / "catalog", server="pg-main")
    write_catalog(console_world / "catalog", server="pg-other")
    return f"file://{console_world / 'catalog'}"


async def test_vim_keys_move_the_catalog_tree(fixed_state: str, console_world: Path) -> None:
    app = make_app(fixed_state, two_servers(console_world))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, loaded(app), timeout=30)
        await pilot.press("2")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
        tree = app.screen.query_one("#destinations", Tree)
        await settle(pilot, lambda: tree.last_line >= 3)
        assert tree.has_focus
        start = tree.cursor_line
        await pilot.press("j")
        await settle(pilot, lambda: tree.cursor_line == start + 1)
        await pilot.press("k")
        await settle(pilot, lambda: tree.cursor_line == start)
        await pilot.press("G")
        await settle(pilot, lambda: tree.cursor_line == tree.last_line)
        await pilot.press("g")
        await settle(pilot, lambda: tree.cursor_line == 0)
        # Moving with them is the operator's move: the tree no longer follows the listing.
        await pilot.press("j")
        await pilot.pause(0.5)
        assert tree.cursor_line == 1


async def test_vim_keys_move_the_wal_server_list(fixed_state: str, console_world: Path) -> None:
    app = make_app(fixed_state, two_servers(console_world))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, loaded(app), timeout=30)
        await pilot.press("3")
        await settle(pilot, lambda: isinstance(app.screen, WalScreen))
        servers = app.screen.query_one("#wal-servers", OptionList)
        await settle(pilot, lambda: servers.option_count >= 2)
        first = servers.highlighted
        await pilot.press("j")
        await settle(pilot, lambda: servers.highlighted == (first or 0) + 1)
        await pilot.press("k")
        await settle(pilot, lambda: servers.highlighted == first)
        await pilot.press("G")
        await settle(pilot, lambda: servers.highlighted == servers.option_count - 1)
        await pilot.press("g")
        await settle(pilot, lambda: servers.highlighted == 0)


async def test_typing_a_filter_the_bottom_line_shows_only_keys_that_act(
    fixed_state: str, console_world: Path
) -> None:
    app = make_app(fixed_state, two_servers(console_world))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, loaded(app), timeout=30)
        assert isinstance(app.screen, JobsScreen)
        bar = app.screen.query_one(KeyBar)
        assert "/ Filter" in str(bar.render()) and "? Help" in str(bar.render())
        await pilot.press("slash")
        await settle(pilot, lambda: isinstance(app.focused, Input))
        await pilot.pause(0.1)
        line = str(bar.render())
        # `/` and `?` type into the filter: the line names the keys that still act.
        assert "/ Filter" not in line and "?" not in line, line
        assert "f1 Help" in line and "f10 Quit" in line, line
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        assert app.query_one("#filter", Input).value == "?"
        # `/` (a priority binding, so that it acts before the keys typed after it) is a
        # character once the box has the focus: a filter can hold a path.
        await pilot.press("slash", "colon")  # `:` (the palette's, a priority one) too
        await pilot.pause(0.2)
        assert app.query_one("#filter", Input).value == "?/:"
        await pilot.press("f1")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))


async def test_every_job_kind_reads_whole_in_the_jobs_table_at_80_columns(
    tmp_path: Path,
) -> None:
    """Seen in tmux: a logical backup and a logical restore both read `logical-` in KIND."""
    kinds = (
        "logical-backup",
        "logical-restore",
        "barman-hook",
        "wal-repair",
        "rehydrate",
        "backup",
        "restore",
    )
    rows = tuple(
        Row(kind, "pg-main", "file:///b", JobState.SUCCEEDED, MiB, MiB, age=600 - i, took=1)
        for i, kind in enumerate(kinds)
    )
    state = str(tmp_path / "state")
    fill_store(state, rows)
    app = make_app(state)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, loaded(app), timeout=30)
        table = app.screen.query_one("#jobs", ResponsiveTable)
        width = dict(table._layout)["kind"]
        shown = [str(table.get_cell(key, "kind")) for key in table.keys]
        assert len(set(shown)) == len(kinds), shown
        assert all(len(text) <= width for text in shown), (width, shown)
        # The filter finds them by their own kind names too.
        await pilot.press("slash", *"logical-restore", "enter")
        await settle(pilot, lambda: len(table.keys) == 1)
        assert str(table.get_cell(table.keys[0], "kind")) == "lg-restore"


async def test_ctrl_p_opens_the_command_palette_as_colon_does(
    fixed_state: str, console_world: Path
) -> None:
    # The README's key table and the help say `:` or ctrl+p; Textual binds its own ctrl+p
    # only when no binding of the app runs the palette, so `:`'s binding had removed it.
    app = make_app(fixed_state, two_servers(console_world))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, loaded(app), timeout=30)
        assert isinstance(app.screen, JobsScreen)
        await pilot.press("ctrl+p")
        await settle(pilot, lambda: CommandPalette.is_open(app))
        await pilot.press("escape")
        await settle(pilot, lambda: not CommandPalette.is_open(app))
        await pilot.press("colon")
        await settle(pilot, lambda: CommandPalette.is_open(app))


async def test_the_help_lists_every_key_of_a_binding(fixed_state: str, console_world: Path) -> None:
    # The README: "? F1 | help" and "the help screen lists every key"; the help showed `?`
    # alone for help (its bottom-bar label `?` stood for f1 too) and `:` for the palette.
    app = make_app(fixed_state, two_servers(console_world))
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot, loaded(app), timeout=30)
        await pilot.press("f1")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert isinstance(app.screen, HelpScreen)
        shown = {k.binding_id: k.keys for k in app.screen.keys}
        assert shown["help"] == "? f1", shown
        assert shown["palette"] == ": ^p", shown
        assert shown["refresh"] == "R f5" and shown["quit"] == "q f10", shown


def test_each_binding_id_has_one_meaning() -> None:
    """The catalog had two `enter` bindings with the id backup.open (`open`, and `open_now`
    for the backups table): a keymap line moved both, and the help could list it twice. A
    binding id names one action of a view."""
    import importlib
    import pkgutil

    from textual.dom import DOMNode

    import tui

    for module in pkgutil.walk_packages(tui.__path__, "tui."):
        importlib.import_module(module.name)
    classes: list[type] = [DOMNode]
    seen: set[type] = set()
    while classes:
        cls = classes.pop()
        classes.extend(c for c in cls.__subclasses__() if c not in seen)
        seen.add(cls)
        if not cls.__module__.startswith("tui."):
            continue
        actions: dict[str, set[str]] = {}
        for binding in cls.__dict__.get("BINDINGS", ()):
            if isinstance(binding, Binding) and binding.id:
                actions.setdefault(binding.id, set()).add(binding.action)
        shared = {key: acts for key, acts in actions.items() if len(acts) > 1}
        assert not shared, (cls.__qualname__, shared)


def seal(catalog_url: str, backup_id: str) -> None:
    """The backup's archive as an encrypted one's: the console shows it locked."""
    base = Path(catalog_url.removeprefix("file://")) / "pg-main" / "base" / backup_id
    (base / "data.tar.age").write_bytes(b"age-encryption.org/v1\n")


def add_logical(catalog_url: str, backup_id: str) -> None:
    """A logical backup of pg-main, as its logical.json lists it."""
    from core.logical.layout import LogicalLayout
    from core.logical.manifest import LogicalManifest

    manifest = LogicalManifest(
        backup_id=backup_id,
        server="pg-main",
        name="nightly",
        started="2026-03-13T03:00:00+00:00",
        finished="2026-03-13T03:01:00+00:00",
        pgvault_version="1",
        server_version=170002,
        server_version_text="17.2",
        pg_dump_version="17.2",
        compression=None,
        jobs=1,
        databases=(),
    )
    path = Path(catalog_url.removeprefix("file://")) / LogicalLayout("pg-main").manifest(backup_id)
    path.parent.mkdir(parents=True)
    path.write_bytes(manifest.to_bytes())


async def test_enter_opens_every_kind_of_catalog_row_and_is_shown_once(
    fixed_state: str, chain_catalog: str
) -> None:
    """One `enter` binding on the catalog: on a full backup, a node of an incremental chain
    and a logical backup it opens the backup's screen; on a locked one the unlock form over
    it. The bottom line and `?` name it once."""
    from tui.modals.unlock import UnlockScreen
    from tui.screens.backup import BackupScreen

    seal(chain_catalog, "20260312T020000")
    add_logical(chain_catalog, "20260313T030000L")
    rows = {
        "20260313T020000": False,  # full, with a chain under it
        "20260313T080000": False,  # an incremental of that chain
        "20260313T030000L": False,  # logical
        "20260312T020000": True,  # locked (encrypted, no key in this console)
    }
    app = make_app(fixed_state, chain_catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, loaded(app), timeout=30)
        for backup_id, locked in rows.items():
            catalog = await open_catalog_on(app, pilot, f"pg-main/{backup_id}")
            bar = str(catalog.query_one(KeyBar).render())
            assert bar.count("enter") == 1 and "enter Open" in bar, bar
            await pilot.press("question_mark")
            await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
            assert isinstance(app.screen, HelpScreen)
            opens = [k for k in app.screen.keys if "enter" in k.keys.split()]
            assert [(k.description, k.binding_id) for k in opens] == [("Open", "backup.open")]
            await pilot.press("escape")
            await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
            await pilot.press("enter")
            if locked:
                await settle(pilot, lambda: isinstance(app.screen, UnlockScreen))
                await pilot.press("escape")
            await settle(pilot, lambda: isinstance(app.screen, BackupScreen))
            shown = app.screen
            assert isinstance(shown, BackupScreen) and shown.ref.info.backup_id == backup_id
            await pilot.press("escape")
            await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
            await pilot.press("1")
            await settle(pilot, lambda: isinstance(app.screen, JobsScreen))
