"""The job detail's bandwidth chart: a rate axis only once something was sent."""

from __future__ import annotations

from core.progress import RateSample
from tui.widgets.bandwidth import render_chart


def test_a_chart_with_nothing_sent_shows_no_rate_scale() -> None:
    lines = render_chart([], now=100.0, window=60.0, width=60, height=8).plain.splitlines()
    assert "B/s" not in "".join(lines)
    assert lines[-2].split("│")[0].strip() == "0"  # the bottom row keeps its zero


def test_a_chart_with_samples_labels_its_top() -> None:
    samples = [RateSample(t, 4 * 1024 * 1024) for t in (50.0, 60.0, 70.0)]
    lines = render_chart(samples, now=100.0, window=60.0, width=60, height=8).plain.splitlines()
    assert "MiB/s" in lines[0]
