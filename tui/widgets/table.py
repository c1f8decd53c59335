"""A row-cursor DataTable with vim keys, columns that fit the terminal, and in-place updates.

Screens hand the table the whole ordered list of rows each time something changes
(`sync`); the table patches only the cells that differ, and rebuilds (keeping the cursor on
the same row key) only when rows come, go or move, or when the width changes which columns
fit. So a row never jumps under the operator's cursor because another row changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rich.text import Text
from textual.binding import Binding
from textual.events import Resize
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

Cells = dict[str, Text]


@dataclass(frozen=True)
class Col:
    """One column: its key, header, width, the table width it needs to appear, and growth."""

    key: str
    label: str
    width: int
    min_width: int = 0  # shown only when the table is at least this wide
    flex: bool = False  # takes the width left over
    right: bool = False  # right-aligned (numbers)


class NavTable(DataTable[Text]):
    """DataTable with a row cursor and j/k/g/G; enter posts RowSelected (screens open it)."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Open", key_display="enter", id="row.open"),
        Binding("j", "cursor_down", "Down", show=False, id="cursor.down"),
        Binding("k", "cursor_up", "Up", show=False, id="cursor.up"),
        Binding("g", "scroll_top", "First", show=False, id="cursor.first"),
        Binding("G", "scroll_bottom", "Last", show=False, id="cursor.last"),
    ]

    def __init__(
        self, *, id: str | None = None, classes: str | None = None, openable: bool = True
    ) -> None:
        super().__init__(cursor_type="row", id=id, classes=classes, zebra_stripes=False)
        self.openable = openable

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select_cursor":
            return self.openable and self.row_count > 0
        return True

    @property
    def current_key(self) -> str | None:
        """The key of the row under the cursor (None for an empty table)."""
        if not self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except Exception:
            return None
        return row_key.value


class ResponsiveTable(NavTable):
    """A NavTable whose rows come from `sync(...)` and whose columns fit its width."""

    def __init__(
        self,
        columns: Sequence[Col],
        *,
        id: str | None = None,
        classes: str | None = None,
        openable: bool = True,
    ) -> None:
        super().__init__(id=id, classes=classes, openable=openable)
        self.specs = tuple(columns)
        self._rows: dict[str, Cells] = {}
        self._order: list[str] = []
        self._layout: tuple[tuple[str, int], ...] = ()

    # ---- columns ---------------------------------------------------------------------------

    def _fit(self, width: int) -> tuple[tuple[str, int], ...]:
        """Columns that fit `width`: optional ones (min_width) go first when too narrow."""
        padding = 2 * self.cell_padding
        room = width - 2  # the vertical scrollbar's gutter
        shown = [c for c in self.specs if width >= c.min_width]
        while sum(c.width + padding for c in shown) > room:
            optional = [c for c in shown if c.min_width]
            if not optional:
                break
            shown.remove(optional[-1])
        spare = room - sum(c.width + padding for c in shown)
        flex = [c for c in shown if c.flex]
        layout = []
        for c in shown:
            if c.flex and flex:
                layout.append((c.key, max(6, c.width + spare // len(flex))))
            else:
                layout.append((c.key, c.width))
        return tuple(layout)

    def on_resize(self, event: Resize) -> None:
        self.relayout()

    def fit_column(self, key: str, width: int) -> None:
        """Give column `key` this width (a column sized to what it shows now)."""
        if all(c.width == width for c in self.specs if c.key == key):
            return
        self.specs = tuple(replace(c, width=width) if c.key == key else c for c in self.specs)
        self.relayout()

    def relayout(self) -> None:
        width = self.size.width
        if width <= 0:
            return
        layout = self._fit(width)
        if layout != self._layout:
            self._layout = layout
            self._rebuild()

    def _rebuild(self) -> None:
        keep = self.current_key
        self.clear(columns=True)
        specs = {c.key: c for c in self.specs}
        for key, width in self._layout:
            spec = specs[key]
            label = Text(spec.label, justify="right" if spec.right else "left")
            self.add_column(label, width=width, key=key)
        for row_key in self._order:
            self.add_row(*self._cells(row_key), key=row_key)
        self._restore(keep)

    def _cells(self, row_key: str) -> list[Text]:
        row = self._rows[row_key]
        return [row.get(key, Text("")) for key, _ in self._layout]

    def _restore(self, key: str | None) -> None:
        if key is None or key not in self._rows:
            return
        try:
            index = self.get_row_index(key)
        except RowDoesNotExist:
            return
        self.move_cursor(row=index, animate=False)

    # ---- rows ------------------------------------------------------------------------------

    def sync(self, rows: Sequence[tuple[str, Cells]]) -> None:
        """Show exactly these rows in this order, patching cells in place where possible."""
        keys = [key for key, _ in rows]
        if not self._layout:
            self._rows = dict(rows)
            self._order = keys
            self.relayout()
            return
        if keys != self._order:
            self._rows = dict(rows)
            self._order = keys
            self._rebuild()
            return
        shown = [key for key, _ in self._layout]
        for row_key, cells in rows:
            old = self._rows.get(row_key, {})
            if old is cells:
                continue  # the screen kept the row's cells: nothing in it changed
            for column in shown:
                value = cells.get(column, Text(""))
                if old.get(column) != value:
                    self.update_cell(row_key, column, value)
            self._rows[row_key] = cells

    def select_key(self, key: str) -> bool:
        """Put the cursor on a row; False when the table has no such row."""
        if key not in self._rows:
            return False
        self._restore(key)
        return True

    @property
    def keys(self) -> list[str]:
        return list(self._order)
