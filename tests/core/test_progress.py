"""The tracker: the rate and ETA follow the data done, the samples follow the wire."""

from __future__ import annotations

from core.progress import RateSample, Tracker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_samples_chart_the_bytes_on_the_wire_and_the_rate_the_data_done() -> None:
    clock = Clock()
    tracker = Tracker(clock=clock)
    tracker.set_totals(bytes_total=1000)
    for _ in range(4):  # data compressed 4:1: 100 bytes of data, 25 on the wire, a second
        clock.now += 0.25
        tracker.advance(50)
        tracker.transferred(12)
        clock.now += 0.25
        tracker.advance(50)
        tracker.transferred(13)
        clock.now += 0.5
    clock.now += 2.0  # then two idle seconds, as a paused job has
    assert tracker.samples() == [
        *(RateSample(1000.0 + s, 25.0) for s in (1, 2, 3, 4)),
        RateSample(1005.0, 0.0),
        RateSample(1006.0, 0.0),
    ]
    snapshot = tracker.snapshot()
    # The rate is the data done over the last 5 s or so: from 100 bytes at 1000.5 to now.
    assert snapshot.bytes_done == 400 and abs(snapshot.rate - 300 / 5.5) < 1e-9
    assert snapshot.eta is not None and abs(snapshot.eta - 600 / (300 / 5.5)) < 1e-9
    assert tracker.samples(since=1005.0) == [RateSample(1006.0, 0.0)]
