"""What every console screen shares: the state it reads, what it is told, read-only keys.

Screens never import the app: they read the `ConsoleState` they are given, the app tells the
shown screen what changed (`jobs_changed`, `catalog_changed`, ...), and a screen posts a
message (tui.messages) for anything it wants done.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from textual.app import App, ScreenStackError
from textual.binding import Binding
from textual.events import ScreenResume
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input

from tui.config import MUTATING
from tui.state import ConsoleState
from tui.widgets.topbar import TopBar

#: `/`: a priority binding, so that the App runs it as it reads the key, before the keys
#: typed after it (one read over SSH or tmux) are handed on: those go to the box. Checked
#: after the focused table, `/pg1` reached the box empty and `p` paused the selected job.
FILTER_BINDING = Binding("slash", "filter", "Filter", key_display="/", id="filter", priority=True)


#: actions of priority keys that open a form or a screen (`r`, `u`, `A`, `enter`): it opens
#: as the App reads the key, and the keys typed with it reach it, not the view behind
FORM_KEYS = frozenset({"restore", "unlock", "retry", "repair_wal", "open"})


def open_filter(screen: Screen[Any]) -> None:
    """Show the screen's `#filter` box and focus it now (Widget.focus() waits a turn)."""
    box = screen.query_one("#filter", Input)
    box.display = True
    screen.set_focus(box)


class ConsoleScreen(Screen[Any]):
    """A view; `can(action)` decides per selection, read-only hides MUTATING actions."""

    #: which top-level view this screen belongs to (the top bar highlights it)
    VIEW = "jobs"
    #: the help screen's title and a sentence or two about the view
    HELP_TITLE = ""
    HELP_TEXT = ""

    def __init__(self, state: ConsoleState) -> None:
        super().__init__()
        self.state = state
        self._styled_for = -1  # the stylesheet version the view was last styled for

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.state.read_only and action in MUTATING:
            return False
        if action == "filter" and getattr(self.focused, "id", None) == "filter":
            return False  # typing in the box: `/` is a character there
        if action in FORM_KEYS and isinstance(self.focused, Input):
            return False  # priority keys, but characters (or enter) in a filter box
        return self.can(action)

    def on_screen_resume(self, event: ScreenResume) -> None:
        self._styled_for = keep_styles(self.app, event, self._styled_for)

    # ---- what the app tells the shown screen (each does nothing unless the view shows it) --

    def jobs_changed(self) -> None:
        """The job feed brought new rows (state.jobs)."""

    def bandwidth_changed(self) -> None:
        """A new second of aggregate bandwidth (state.bandwidth)."""

    def catalog_changed(self) -> None:
        """A destination's listing started or arrived (state.destinations)."""

    def demo_changed(self) -> None:
        """The demo's start-up moved on (state.demo_status)."""

    def keys_changed(self) -> None:
        """The operator unlocked a server's keys (state.keys)."""

    def forget_listings(self) -> None:
        """The operator asked to refresh: drop what the view listed itself."""

    def status_changed(self) -> None:
        """Counts, read-only, frozen or store error: redraw the top bar."""
        for bar in self.query(TopBar):
            bar.status_changed()

    def can(self, action: str) -> bool | None:
        """True to allow, False to hide the key, None to show it disabled."""
        return True


def keep_styles(app: App[Any], event: ScreenResume, styled_for: int) -> int:
    """Skip Textual's restyle of a kept screen shown again unless the stylesheet changed
    since it was styled; the stylesheet version to remember.

    Textual re-applies the whole stylesheet to a screen on each resume (a view brought back
    by a mode switch, a kept screen pushed again): a third of a view switch's CPU, most of
    opening a kept help or job detail screen. Nothing restyles a screen while it is hidden
    except a stylesheet change (a theme change goes through App.refresh_css, which counts
    them in `_css_update_count`; Textual's own switch_mode compares the same count).
    """
    current = app._css_update_count
    event.refresh_styles = current != styled_for
    return current


class FilteredScreen(ConsoleScreen):
    """A view whose main table a `/` box filters; `esc` clears the filter.

    Subclasses bind `slash` to `filter` and `escape` to `clear_filter` (in their own key
    order), compose an Input with id `filter`, and say how to redraw and what to focus.
    """

    def __init__(self, state: ConsoleState) -> None:
        super().__init__(state)
        self.filter_terms: list[str] = []

    @abstractmethod
    def refilter(self) -> None:
        """Redraw the table with the current filter terms."""

    @abstractmethod
    def filtered_table(self) -> Widget:
        """The table the filter applies to (focused when the filter is done)."""

    def action_filter(self) -> None:
        open_filter(self)

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


def shown_screen(app: App[Any]) -> ConsoleScreen | None:
    """The current screen if it is a view (None under a dialog, or while the console closes
    and the feed's last messages still arrive)."""
    try:
        screen = app.screen
    except ScreenStackError:
        return None
    return screen if isinstance(screen, ConsoleScreen) else None
