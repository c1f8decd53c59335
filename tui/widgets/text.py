"""Static text that the live views set on every poll: redrawn only when the text changed.

The jobs view and the job detail set their titles, facts and labels three times a second
whether or not anything moved; Textual's `Static.update` re-parses the content and asks for
a layout of the screen every time (half of the UI thread's work while a backup runs).
"""

from __future__ import annotations

from rich.text import Text
from textual.visual import VisualType
from textual.widgets import Label, Static


def same_key(content: VisualType) -> object:
    """What decides whether two contents draw the same (rich's `Text.__eq__` ignores the
    text's own style and justification)."""
    if isinstance(content, Text):
        return (
            content.plain,
            tuple(content.spans),
            str(content.style),
            content.justify,
            content.overflow,
            content.no_wrap,
            content.end,
        )
    if isinstance(content, str):
        return content
    return id(content)  # anything else: always redrawn


class StaticText(Static):
    """A Static whose `update` is skipped when the content draws the same as shown."""

    def __init__(
        self, content: VisualType = "", *, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(content, id=id, classes=classes)
        self._shown = same_key(content)

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        key = same_key(content)
        if key == self._shown:
            return
        self._shown = key
        super().update(content, layout=layout)


class LabelText(StaticText, Label):
    """A Label (sized to its text) whose `update` is skipped likewise."""
