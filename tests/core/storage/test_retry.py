"""Retries: transient errors are retried with backoff, permanent ones are not, reads resume."""

from __future__ import annotations

import pytest

from core.errors import AccessDenied, ContainerNotFound, TransientError
from core.storage.backend import RawStream
from core.storage.retry import RetryPolicy
from tests.support.destinations import TestDestination


def test_transient_errors_are_retried_until_success() -> None:
    calls = []
    sleeps: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("503 SlowDown")
        return "ok"

    assert RetryPolicy(attempts=5, base=0.1).call(flaky, "op", sleep=sleeps.append) == "ok"
    assert len(calls) == 3 and len(sleeps) == 2
    assert all(0 <= s <= 0.2 for s in sleeps)


@pytest.mark.parametrize("error", [AccessDenied("403"), ContainerNotFound("no bucket")])
def test_what_cannot_succeed_is_not_retried(error: Exception) -> None:
    calls = []

    def failing() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        RetryPolicy(attempts=5).call(failing, "op", sleep=lambda s: None)
    assert len(calls) == 1


def test_retries_give_up_after_the_last_attempt() -> None:
    calls = []

    def failing() -> None:
        calls.append(1)
        raise TransientError("reset")

    with pytest.raises(TransientError):
        RetryPolicy(attempts=4).call(failing, "op", sleep=lambda s: None)
    assert len(calls) == 4


def test_a_download_dropped_mid_stream_resumes_where_it_broke(
    destination: TestDestination,
) -> None:
    data = bytes(range(256)) * 40_000  # ~10 MB
    with destination.store(retry=RetryPolicy(attempts=3, base=0.01, cap=0.01)) as store:
        store.put_bytes("drop/obj", data)
        opened: list[int] = []
        original = store._open_stream

        class Dropping(RawStream):
            """The real stream, cut with a reset after 1 MB, the first time only."""

            def __init__(self, inner: RawStream, cut: bool) -> None:
                self.inner, self.cut, self.seen = inner, cut, 0

            def read(self, n: int) -> bytes:
                if self.cut and self.seen >= 1_000_000:
                    raise TransientError("connection reset by peer")
                chunk = self.inner.read(min(n, 65536))
                self.seen += len(chunk)
                return chunk

            def close(self) -> None:
                self.inner.close()

        def dropping(key: str, start: int, end: int | None) -> RawStream:
            opened.append(start)
            return Dropping(original(key, start, end), cut=len(opened) == 1)

        store._open_stream = dropping  # type: ignore[method-assign]
        assert store.get_bytes("drop/obj") == data
        # Resumed where it broke, never from the start. A loaded emulator may drop the resumed
        # stream for real once more (gcs did): that open resumes further on, within attempts.
        assert opened[0] == 0 and 2 <= len(opened) <= 3, opened
        assert all(start >= 1_000_000 for start in opened[1:]), opened


def test_a_listing_broken_on_a_later_page_goes_on_without_repeating_entries(
    destination: TestDestination,
) -> None:
    keys = [f"many/{i:04d}" for i in range(25)]
    with destination.store(retry=RetryPolicy(attempts=3, base=0.01, cap=0.01)) as store:
        for key in keys:
            store.put_bytes(key, key.encode())
        original = store._list
        attempts: list[int] = []

        def breaking(prefix: str, delimiter: str | None, page_size: int | None):  # type: ignore[no-untyped-def]
            """The real listing in pages of 10, reset after its second page the first time."""
            attempts.append(1)
            for count, item in enumerate(original(prefix, delimiter, 10), 1):
                yield item
                if len(attempts) == 1 and count == 20:
                    raise TransientError("connection dropped")

        store._list = breaking  # type: ignore[method-assign]
        listed = [info.key for info in store.list_objects("many/")]
    assert listed == keys
    assert len(attempts) == 2
