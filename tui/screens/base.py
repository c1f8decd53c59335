"""What every console screen shares: read-only enforcement and typed access to the app."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any, cast

from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input

from tui.config import MUTATING

if TYPE_CHECKING:
    from tui.app import PgvaultApp


class ConsoleScreen(Screen[Any]):
    """A view; `can(action)` decides per selection, read-only hides MUTATING actions."""

    #: which top-level view this screen belongs to (the top bar highlights it)
    VIEW = "jobs"
    #: a sentence or two for the help screen
    HELP_TEXT = ""

    @property
    def console(self) -> PgvaultApp:
        return cast("PgvaultApp", self.app)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.console.read_only and action in MUTATING:
            return False
        return self.can(action)

    def can(self, action: str) -> bool | None:
        """True to allow, False to hide the key, None to show it disabled."""
        return True


class FilteredScreen(ConsoleScreen):
    """A view whose main table a `/` box filters; `esc` clears the filter.

    Subclasses bind `slash` to `filter` and `escape` to `clear_filter` (in their own key
    order), compose an Input with id `filter`, and say how to redraw and what to focus.
    """

    def __init__(self) -> None:
        super().__init__()
        self.filter_terms: list[str] = []

    @abstractmethod
    def refilter(self) -> None:
        """Redraw the table with the current filter terms."""

    @abstractmethod
    def filtered_table(self) -> Widget:
        """The table the filter applies to (focused when the filter is done)."""

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if not box.display and not self.filter_terms:
            return
        box.value = ""
        box.display = False
        self.filter_terms = []
        self.refilter()
        self.filtered_table().focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.filter_terms = event.value.lower().split()
            self.refilter()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            if not event.value.strip():
                event.input.display = False
            self.filtered_table().focus()
