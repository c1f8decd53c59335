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


def test_the_eta_follows_the_wire_when_sending_is_the_bottleneck() -> None:
    """Reading keeps 40 bytes a second (into buffers) while the wire drops to 2 a second:
    the 400 bytes left take the wire's time, not 10 s of reading."""
    clock = Clock()
    tracker = Tracker(clock=clock)
    tracker.set_totals(bytes_total=800)
    for second in range(10):
        clock.now += 1.0
        tracker.advance(40)
        tracker.transferred(10 if second < 5 else 2)
    clock.now += 0.001
    snapshot = tracker.snapshot()
    assert snapshot.bytes_done == 400 and abs(snapshot.rate - 40.0) < 0.1
    ratio = (5 * 10 + 5 * 2) / 400
    recent = [s.rate for s in tracker.samples()[-5:]]  # the last whole seconds on the wire
    assert max(recent) <= 10 and sum(recent) / 5 < 4
    assert snapshot.eta is not None
    assert abs(snapshot.eta - 400 * ratio / (sum(recent) / 5)) < 1e-6
    assert snapshot.eta > 1.5 * 400 / snapshot.rate  # not the 10 s that reading alone says
