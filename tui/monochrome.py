"""NO_COLOR: greys in which every colour of text stays readable.

Textual's own monochrome filter turns red text on a dark background into dark grey on dark
grey (a failed job's state all but vanishes). This one converts to greys the same way, then
moves text whose grey sits too close to its background's to the light or dark end.
"""

from __future__ import annotations

from functools import lru_cache

from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.filter import LineFilter

#: the least difference of brightness (0 to 1) between text and its background
MIN_CONTRAST = 0.25
#: below this brightness a background is dark (text goes light), above it light
MID_GREY = 0.5
LIGHT = Color(230, 230, 230)
DARK = Color(20, 20, 20)


@lru_cache(1024)
def readable_grey_style(style: Style, background: Color) -> Style:
    fg = Color.from_rich_color(style.color).monochrome if style.color else None
    bg = Color.from_rich_color(style.bgcolor).monochrome if style.bgcolor else None
    behind = bg or background.monochrome
    if fg is not None and abs(fg.brightness - behind.brightness) < MIN_CONTRAST:
        fg = LIGHT if behind.brightness < MID_GREY else DARK
    return style + Style.from_color(fg.rich_color if fg else None, bg.rich_color if bg else None)


class ReadableMonochrome(LineFilter):
    """Greys, with a minimum contrast between text and its background."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [
            Segment(text, readable_grey_style(style, background) if style else style, None)
            for text, style, _ in segments
        ]
