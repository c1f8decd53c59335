"""Static text that the live views set on every poll: redrawn only when the text changed,
and without a layout of the screen when its size cannot change.

The jobs view and the job detail set their titles, facts and labels three times a second
whether or not anything moved; Textual's `Static.update` re-parses the content and lays the
whole screen out again every time, and a layout redraws every widget, the job table's
lines included: most of the UI thread's work while a backup runs.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.visual import VisualType
from textual.widgets import Label, Static


def shape(content: VisualType) -> tuple[int, int] | None:
    """(lines, cells of the widest line) of plain content; None for anything else."""
    if isinstance(content, Text):
        lines = content.split(allow_blank=True)
        return len(lines), max((line.cell_len for line in lines), default=0)
    if isinstance(content, str) and "[" not in content:
        parts = content.split("\n")
        return len(parts), max((cell_len(line) for line in parts), default=0)
    return None


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
        self._shape = shape(content)

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        key = same_key(content)
        if key == self._shown:
            return
        new = shape(content)
        if layout and not self._resizes(new):
            layout = False
        self._shown, self._shape = key, new
        super().update(content, layout=layout)

    def _resizes(self, new: tuple[int, int] | None) -> bool:
        """Whether the new content may change the widget's size (then the whole screen is
        laid out again). Not when the stylesheet fixes its size, nor when it is sized to its
        text and the new text has the same lines and width (or width that fits unwrapped)."""
        old = self._shape
        if new is None or old is None:
            return True
        height, width = self.styles.height, self.styles.width
        auto_width = width is not None and width.is_auto
        if auto_width and new[1] != old[1]:
            return True
        if height is None or height.is_auto:
            room = self.content_region.width
            unwrapped = auto_width or max(new[1], old[1]) <= room
            return new[0] != old[0] or not unwrapped
        return False


class LabelText(StaticText, Label):
    """A Label (sized to its text) whose `update` is skipped likewise."""
