"""The top row of every view: the views and their keys, job counts, and the console's mode."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.widget import Widget

from core.jobs import JobState
from tui.config import VIEWS

if TYPE_CHECKING:
    from tui.app import PgvaultApp

#: which counts the bar shows, in order, with their word and style
COUNTED: tuple[tuple[tuple[JobState, ...], str, str], ...] = (
    ((JobState.RUNNING, JobState.PENDING), "running", "bold green"),
    ((JobState.PAUSE_REQUESTED, JobState.PAUSED), "paused", "bold yellow"),
    ((JobState.CANCEL_REQUESTED,), "cancelling", "yellow"),
    ((JobState.FAILED,), "failed", "bold red"),
)


class TopBar(Widget):
    """` pgvault  1 Jobs  2 Catalog  3 WAL       2 running  1 failed  READ-ONLY `"""

    DEFAULT_CSS = """
    TopBar { height: 1; background: $panel; }
    """

    def render(self) -> Text:
        app = cast("PgvaultApp", self.app)
        width = self.content_region.width
        left = Text()
        left.append(" pgvault ", style="bold reverse")
        current = app.current_mode
        screen_view = getattr(self.screen, "VIEW", current)
        for mode, key, label in VIEWS:
            left.append(" ")
            style = "bold reverse" if mode == screen_view else ""
            left.append(f" {key} {label} ", style=style)
        right = Text()
        counts = app.job_counts()
        for states, word, style in COUNTED:
            count = sum(counts.get(s, 0) for s in states)
            if count:
                right.append(f"{count} {word}", style=style)
                right.append("  ")
        if app.read_only:
            right.append("READ-ONLY", style="bold reverse")
            right.append(" ")
        if app.frozen:
            right.append("FROZEN", style="bold reverse")
            right.append(" ")
        if app.feed_error:
            right.append("STORE ERROR", style="bold red reverse")
            right.append(" ")
        right.rstrip()
        right.append(" ")
        room = width - left.cell_len
        if right.cell_len > room:
            right.truncate(max(0, room), overflow="ellipsis")
        gap = max(0, width - left.cell_len - right.cell_len)
        return Text.assemble(left, " " * gap, right)
