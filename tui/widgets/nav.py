"""The catalog's tree and the WAL view's server list with the tables' vim keys.

The help and the README promise `j` `k` (down, up) and `g` `G` (first, last) wherever a
list has the cursor; Textual's Tree and OptionList bind only the arrows, so on the left
pane of the catalog and WAL views those keys did nothing.
"""

from __future__ import annotations

from typing import TypeVar

from textual.binding import Binding
from textual.widgets import OptionList, Tree

T = TypeVar("T")

#: the keys NavTable binds too (tui.widgets.table), with the same ids
VIM_KEYS = (
    Binding("j", "cursor_down", "Down", show=False, id="cursor.down"),
    Binding("k", "cursor_up", "Up", show=False, id="cursor.up"),
    Binding("g", "cursor_first", "First", show=False, id="cursor.first"),
    Binding("G", "cursor_last", "Last", show=False, id="cursor.last"),
)


class NavTree(Tree[T]):
    """A Tree that also moves with j/k/g/G."""

    BINDINGS = list(VIM_KEYS)

    def action_cursor_first(self) -> None:
        self.cursor_line = 0

    def action_cursor_last(self) -> None:
        self.cursor_line = self.last_line


class NavOptionList(OptionList):
    """An OptionList that also moves with j/k/g/G."""

    BINDINGS = list(VIM_KEYS)

    def action_cursor_first(self) -> None:
        self.action_first()

    def action_cursor_last(self) -> None:
        self.action_last()
