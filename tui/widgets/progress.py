"""A one-row progress bar with its numbers: blocks for the eye, a percentage for certainty."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from tui import fmt

MIN_BAR = 5  # cells of bar below which the right-hand text is dropped


def progress_text(
    fraction: float | None, width: int, right: str = "", style: str = "", final: bool = False
) -> Text:
    """'█████░░░░  45%  right' fitted to width (the bar shrinks first)."""
    percent = fmt.percent(fraction, final)
    tail = f" {percent}" + (f"  {right}" if right else "")
    room = width - len(tail)
    if room < MIN_BAR:
        tail = f" {percent}"
        room = width - len(tail)
    text = Text()
    text.append(fmt.bar(fraction, max(1, room)), style=style or "bold")
    text.append(tail)
    return text


class ProgressLine(Widget):
    """A job's progress across the whole width."""

    DEFAULT_CSS = """
    ProgressLine { height: 1; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.fraction: float | None = None
        self.right = ""
        self.bar_style = ""
        self.final = False

    def set_progress(
        self, fraction: float | None, right: str = "", style: str = "", final: bool = False
    ) -> None:
        """`final`: the job has ended (an unknown fraction then shows '-', not '?%')."""
        shown = (self.fraction, self.right, self.bar_style, self.final)
        if (fraction, right, style, final) != shown:
            self.fraction, self.right, self.bar_style, self.final = fraction, right, style, final
            self.refresh()

    def render(self) -> Text:
        width = self.content_region.width
        return progress_text(self.fraction, width, self.right, self.bar_style, self.final)
