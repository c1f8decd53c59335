"""Bandwidth over time, drawn with the eight block characters (any monospace font has them).

`BandwidthChart` is the job detail's multi-row chart with a rate axis and a time axis;
`Sparkline` is the one-row version on the jobs view. Both read 1 s rate samples (bytes per
second) and are readable without colour: the height of the bars is the information.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from core.progress import RateSample
from tui import fmt

BLOCKS = " ▁▂▃▄▅▆▇█"
AXIS_WIDTH = 12
MIN_ROWS = 2  # a chart any lower is drawn as a sparkline
MID_LABEL_ROWS = 4  # a chart this high labels its middle row too


def bucket_rates(
    samples: Sequence[RateSample], start: float, end: float, columns: int
) -> list[float | None]:
    """The rate per column over [start, end): mean of the samples in it, None where none is.

    A sample at `at` covers the second (at - 1, at]; when a column is narrower than a
    second it takes the sample whose second holds its middle.
    """
    if columns <= 0 or end <= start:
        return []
    step = (end - start) / columns
    values: list[float | None] = [None] * columns
    if step >= 1.0:
        sums = [0.0] * columns
        counts = [0] * columns
        for sample in samples:
            index = math.floor((sample.at - start) / step)
            if 0 <= index < columns:
                sums[index] += sample.rate
                counts[index] += 1
        return [sums[i] / counts[i] if counts[i] else None for i in range(columns)]
    by_second = {math.ceil(s.at): s.rate for s in samples}
    for index in range(columns):
        middle = start + (index + 0.5) * step
        values[index] = by_second.get(math.ceil(middle))
    return values


def nice_ceiling(value: float) -> float:
    """The next 1, 2 or 5 times a power of 1024 or 10 above value (an axis top)."""
    if value <= 0:
        return 1.0
    unit = 1024 ** max(0, int(math.log(value, 1024)))
    scaled = value / unit
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 1024):
        if scaled <= step:
            return float(step * unit)
    return float(value)


def column_heights(values: Sequence[float | None], top: float, rows: int) -> list[int | None]:
    """Each column's height in eighths of a row (None: no data)."""
    heights: list[int | None] = []
    for value in values:
        if value is None:
            heights.append(None)
        else:
            eighths = round(max(0.0, value) / top * rows * 8) if top > 0 else 0
            if value > 0 and eighths == 0:
                eighths = 1  # a trickle still shows
            heights.append(min(rows * 8, eighths))
    return heights


def bar_rows(heights: Sequence[int | None], rows: int) -> list[str]:
    """The chart area, top row first."""
    lines = []
    for row in range(rows - 1, -1, -1):
        chars = []
        for height in heights:
            if height is None:
                chars.append(" ")
            else:
                chars.append(BLOCKS[max(0, min(8, height - row * 8))])
        lines.append("".join(chars))
    return lines


def rate_label(value: float) -> str:
    return fmt.per_second(value) if value > 0 else "0"


def span(seconds: float) -> str:
    """'5m', '2m30s', '1h', '45s': a time axis label."""
    s = round(seconds)
    if s >= fmt.HOUR and s % fmt.HOUR == 0:
        return f"{s // fmt.HOUR}h"
    if s >= fmt.MINUTE and s % fmt.MINUTE == 0:
        return f"{s // fmt.MINUTE}m"
    return fmt.duration(s)


def time_axis(width: int, window: float) -> str:
    """'-5m ... -2m30s ... now' spread over width cells."""
    left = f"-{span(window)}"
    right = "now"
    middle = f"-{span(window / 2)}"
    line = [" "] * width
    for position, label in ((0, left), (width - len(right), right)):
        for i, ch in enumerate(label):
            if 0 <= position + i < width:
                line[position + i] = ch
    center = width // 2 - len(middle) // 2
    if width >= len(left) + len(middle) + len(right) + 4:
        for i, ch in enumerate(middle):
            line[center + i] = ch
    return "".join(line)


def render_chart(
    samples: Sequence[RateSample], now: float, window: float, width: int, height: int
) -> Text:
    """The whole chart: rate axis on the left, bars, time axis underneath."""
    if width <= AXIS_WIDTH + 4 or height < MIN_ROWS:
        return render_sparkline(samples, now, window, width)
    rows = height - 1
    columns = width - AXIS_WIDTH - 1
    values = bucket_rates(samples, now - window, now, columns)
    peak = max((v for v in values if v is not None), default=0.0)
    top = nice_ceiling(peak)
    lines = bar_rows(column_heights(values, top, rows), rows)
    text = Text()
    for index, line in enumerate(lines):
        if index < rows - 1 and peak <= 0:
            label = ""  # nothing sent yet: no scale to show ("1 B/s" over "0 B/s" misled)
        elif index == 0:
            label = rate_label(top)
        elif index == rows // 2 and rows >= MID_LABEL_ROWS:
            label = rate_label(top * (rows - index) / rows)
        elif index == rows - 1:
            label = "0"
        else:
            label = ""
        text.append(label.rjust(AXIS_WIDTH - 1) + " ", style="dim")
        text.append("│", style="dim")
        text.append(line, style="bold")
        text.append("\n")
    text.append(" " * AXIS_WIDTH + "└", style="dim")
    text.append(time_axis(columns, window), style="dim")
    return text


def render_sparkline(samples: Sequence[RateSample], now: float, window: float, width: int) -> Text:
    values = bucket_rates(samples, now - window, now, max(1, width))
    peak = max((v for v in values if v is not None), default=0.0)
    heights = column_heights(values, nice_ceiling(peak) if peak else 1.0, 1)
    return Text(bar_rows(heights, 1)[0], style="bold")


class BandwidthChart(Widget):
    """Rate samples of the last `window` seconds as a chart as tall as the widget."""

    DEFAULT_CSS = """
    BandwidthChart { height: 8; }
    """

    window: reactive[float] = reactive(300.0)

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.clock = clock
        self.samples: list[RateSample] = []

    def set_samples(self, samples: Sequence[RateSample]) -> None:
        self.samples = list(samples)
        self.refresh()

    def render(self) -> Text:
        size = self.content_region.size
        return render_chart(self.samples, self.clock(), self.window, size.width, size.height)


class Sparkline(Widget):
    """One row of bandwidth, newest on the right."""

    DEFAULT_CSS = """
    Sparkline { height: 1; }
    """

    def __init__(
        self,
        clock: Callable[[], float],
        window: float,
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.clock = clock
        self.window = window
        self.samples: list[RateSample] = []

    def set_samples(self, samples: Sequence[RateSample]) -> None:
        self.samples = list(samples)
        self.refresh()

    def render(self) -> Text:
        return render_sparkline(self.samples, self.clock(), self.window, self.content_region.width)
