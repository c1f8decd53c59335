"""`?`: every key the current view answers to, from its live bindings, and what the view is."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.events import ScreenResume
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static

from tui.keymap import keymap_path
from tui.screens.base import ConsoleScreen, keep_styles


def general_text(keymap: Path) -> str:
    """What holds in every view; `keymap` is the file this console reads its keys from."""
    home = str(Path.home())
    shown = str(keymap)
    if home != "/" and shown.startswith(home + "/"):
        shown = "~" + shown[len(home) :]
    return (
        "Jobs keep running when the console quits; reopen it to find them. "
        "ctrl+p (or :) opens the command palette. "
        f'Keys can be changed in {shown} ([keys] binding-id = "keys").'
    )


#: keys a binding carries beside the one its label names (f1 beside `?`, f5 beside R)
FUNCTION_KEY = re.compile(r"f[0-9]+")


@dataclass(frozen=True)
class KeyHelp:
    keys: str
    description: str
    binding_id: str
    everywhere: bool


def collect(screen: Screen[object]) -> list[KeyHelp]:
    """The active bindings of a screen (and its focused widget, and the app), one per action."""
    app = screen.app
    grouped: dict[tuple[bool, str, str], list[str]] = {}
    ids: dict[tuple[bool, str, str], str] = {}
    for active in screen.active_bindings.values():
        binding: Binding = active.binding
        # pgvault's own keys carry an id (remappable); Textual's widget defaults (page keys,
        # left/right in a table) do not and would drown the list.
        if not binding.description or not binding.id or not active.enabled:
            continue
        everywhere = active.node is app
        entry = (everywhere, binding.action, binding.description)
        # A label names a binding's first key (`?` for question_mark,f1): the others by name.
        label = binding.key_display
        if not label or FUNCTION_KEY.fullmatch(binding.key):
            label = app.get_key_display(replace(binding, key_display=None))
        shown = label
        keys = grouped.setdefault(entry, [])
        if shown not in keys:
            keys.append(shown)
        if binding.id and entry not in ids:
            ids[entry] = binding.id
    result = [
        KeyHelp(" ".join(keys), description, ids.get((every, action, description), ""), every)
        for (every, action, description), keys in grouped.items()
    ]
    return sorted(result, key=lambda k: k.everywhere)


def key_table(keys: list[KeyHelp]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_column(style="dim", no_wrap=True)
    for item in keys:
        table.add_row(item.keys, item.description, item.binding_id)
    return table


class HelpScreen(ModalScreen[None]):
    """Keys of the view below, then the keys that work everywhere."""

    BINDINGS = [
        Binding("escape,question_mark,f1,q", "close", "Close", key_display="esc", id="help.close"),
        # the lists' vim keys (tui.widgets.nav) scroll the help as the arrows do
        Binding("j", "scroll_body('down')", "Down", show=False),
        Binding("k", "scroll_body('up')", "Up", show=False),
        Binding("g", "scroll_body('home')", "Top", show=False),
        Binding("G", "scroll_body('end')", "Bottom", show=False),
    ]

    def __init__(
        self, title: str, text: str, keys: list[KeyHelp], keymap: Path | None = None
    ) -> None:
        super().__init__()
        self.title_text = title
        self.text = text
        self.keys = keys
        self.keymap = keymap or keymap_path()
        self._styled_for = -1  # the stylesheet version it was last styled for

    def on_screen_resume(self, event: ScreenResume) -> None:
        # Kept installed and shown again on each `?`: not restyled unless the theme changed.
        self._styled_for = keep_styles(self.app, event, self._styled_for)

    def identity(self) -> tuple[str, str, tuple[KeyHelp, ...]]:
        """Equal for two help screens that would show the same thing."""
        return (self.title_text, self.text, tuple(self.keys))

    @classmethod
    def for_screen(cls, screen: Screen[object]) -> HelpScreen:
        title, text, keymap = "", "", None
        if isinstance(screen, ConsoleScreen):
            title, text = screen.HELP_TITLE, screen.HELP_TEXT
            keymap = keymap_path(screen.state.config.keymap_file)
        return cls(title or "pgvault", text, collect(screen), keymap)

    def compose(self) -> ComposeResult:
        local = [k for k in self.keys if not k.everywhere]
        general = [k for k in self.keys if k.everywhere]
        with Vertical(id="dialog"):
            yield Label(f"Help: {self.title_text}", id="dialog-title")
            with VerticalScroll(id="help-body"):
                if local:
                    yield Label("In this view", classes="help-heading")
                    yield Static(key_table(local))
                if general:
                    yield Label("Everywhere", classes="help-heading")
                    yield Static(key_table(general))
                if self.text:
                    yield Label("About this view", classes="help-heading")
                    yield Static(Text(self.text), classes="help-text")
                yield Static(Text(general_text(self.keymap), style="dim"), classes="help-text")
            yield Label("esc closes", id="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll_body(self, where: str) -> None:
        body = self.query_one("#help-body", VerticalScroll)
        moves = {
            "down": body.scroll_down,
            "up": body.scroll_up,
            "home": body.scroll_home,
            "end": body.scroll_end,
        }
        moves[where](animate=False)
