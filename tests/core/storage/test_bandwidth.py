"""The shared limiter caps the real rate over any 10 s window, across concurrent parts."""

from __future__ import annotations

import threading
import time

from core.storage.bandwidth import BandwidthLimiter, Payload
from tests.support.destinations import TestDestination

MiB = 1024 * 1024


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_reservations_space_consumers_at_the_rate() -> None:
    clock = FakeClock()
    limiter = BandwidthLimiter(1000, burst_seconds=0, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        limiter.consume(500)
    assert abs(clock.now - 4.5) < 1e-9  # the first slice goes at once, then 2 per second


def test_payload_charges_each_byte_once_even_when_rewound() -> None:
    charged: list[int] = []

    class Counting(BandwidthLimiter):
        def consume(self, nbytes: int) -> None:
            charged.append(nbytes)

    payload = Payload(b"x" * 300_000, Counting(10**9))
    assert payload.read() == b"x" * 300_000
    payload.seek(0)
    assert len(payload.read()) == 300_000
    assert sum(charged) == 300_000


def test_payload_meters_each_byte_once_with_or_without_a_limiter() -> None:
    for limiter in (None, BandwidthLimiter(10**9)):
        metered: list[int] = []
        payload = Payload(b"y" * 200_000, limiter, meter=metered.append)
        assert b"".join(payload.views(70_000)) == b"y" * 200_000
        payload.seek(0)
        payload.charging = False  # a signing pass is not on the wire
        assert len(payload.read()) == 200_000
        assert sum(metered) == 200_000


def test_real_upload_stays_within_ten_percent_over_any_ten_second_window(
    make_dest: object,
) -> None:
    dest: TestDestination = make_dest("s3")  # type: ignore[operator]
    cap = 3 * MiB
    samples: list[tuple[float, int]] = []
    lock = threading.Lock()
    with dest.store(jobs=4, max_bandwidth=cap, min_chunk_size=5 * MiB) as store:
        original = store._mpu_part

        def recording(handle: object, number: int, offset: int, body: Payload) -> object:
            inner = body.readinto

            def readinto(buffer: bytearray) -> int:
                # Only the pass that feeds the socket counts (not SigV4's hashing pass).
                n = inner(buffer)
                if body.charging:
                    with lock:
                        samples.append((time.monotonic(), n))
                return n

            body.readinto = readinto  # type: ignore[method-assign]
            return original(handle, number, offset, body)

        store._mpu_part = recording  # type: ignore[method-assign]
        started = time.monotonic()
        with store.open_writer("capped/object") as writer:
            for _ in range(42):
                writer.write(b"\xab" * MiB)
        elapsed = time.monotonic() - started

    total = sum(n for _, n in samples)
    assert total >= 40 * MiB  # the last part may go as a put; most bytes were sampled
    assert elapsed >= 42 * MiB / cap * 0.9
    times = sorted(samples)
    worst = 0.0
    for i, (t0, _) in enumerate(times):
        window = sum(n for t, n in times[i:] if t < t0 + 10)
        worst = max(worst, window / 10)
    assert worst <= cap * 1.10, f"peak 10 s rate {worst / MiB:.2f} MiB/s over a {cap / MiB} cap"
