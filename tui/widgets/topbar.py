"""The top row of every view: the views and their keys, job counts, and the console's mode."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from core.jobs import JobState
from tui.config import VIEWS
from tui.state import ConsoleState

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

    def __init__(self, state: ConsoleState, view: str) -> None:
        super().__init__()
        self.state = state
        self.view = view  # the top-level view (mode) the bar's screen belongs to
        self._shown: tuple[object, ...] | None = None

    def status_changed(self) -> None:
        """Redraw if what the bar says changed (the feed tells it three times a second)."""
        if self._status() != self._shown:
            self.refresh()

    def _status(self) -> tuple[object, ...]:
        state = self.state
        counts = state.job_counts()
        counted = tuple(sum(counts.get(s, 0) for s in states) for states, _, _ in COUNTED)
        return counted, state.read_only, state.frozen, state.feed_error

    def render(self) -> Text:
        self._shown = self._status()
        width = self.content_region.width
        right = self._right()
        left = self._left(compact=0)
        for compact in range(1, len(VIEWS) + 1):
            if left.cell_len + right.cell_len <= width:
                break
            # short of room: the last views by their key alone, so the counts stay whole
            left = self._left(compact)
        room = width - left.cell_len
        if right.cell_len > room:
            right.truncate(max(0, room), overflow="ellipsis")
        gap = max(0, width - left.cell_len - right.cell_len)
        return Text.assemble(left, " " * gap, right)

    def _left(self, compact: int) -> Text:
        """The views, the last `compact` of them (except the current one) by key alone."""
        left = Text()
        left.append(" pgvault ", style="bold reverse")
        for index, (mode, key, label) in enumerate(VIEWS):
            left.append(" ")
            current = mode == self.view
            short = not current and index >= len(VIEWS) - compact
            style = "bold reverse" if current else ""
            left.append(f" {key} " if short else f" {key} {label} ", style=style)
        return left

    def _right(self) -> Text:
        state = self.state
        right = Text()
        counts = state.job_counts()
        for states, word, style in COUNTED:
            count = sum(counts.get(s, 0) for s in states)
            if count:
                right.append(f"{count} {word}", style=style)
                right.append("  ")
        if state.read_only:
            right.append("READ-ONLY", style="bold reverse")
            right.append(" ")
        if state.frozen:
            right.append("FROZEN", style="bold reverse")
            right.append(" ")
        if state.feed_error:
            right.append("STORE ERROR", style="bold red reverse")
            right.append(" ")
        right.rstrip()
        right.append(" ")
        return right
