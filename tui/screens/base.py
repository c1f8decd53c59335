"""What every console screen shares: read-only enforcement and typed access to the app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual.screen import Screen

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
