"""ToolWatch tells a paused job (its checkpoint blocking) from a slow look beside it."""

from __future__ import annotations

import threading
import time

from core.logical.process import POLL, ToolWatch


def _seen_paused(watch: ToolWatch, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if watch.paused:
            return True
        time.sleep(0.02)
    return False


def test_a_slow_look_is_not_a_pause() -> None:
    watch = ToolWatch(lambda: None, lambda: time.sleep(3 * POLL))
    try:
        assert not _seen_paused(watch, 8 * POLL)
    finally:
        watch.stop()


def test_a_blocking_checkpoint_is_a_pause_until_it_returns() -> None:
    running = threading.Event()
    watch = ToolWatch(running.wait, lambda: None)
    try:
        assert _seen_paused(watch, 8 * POLL)
        running.set()
        time.sleep(2 * POLL)
        assert not _seen_paused(watch, 4 * POLL)
        assert watch.error is None
    finally:
        running.set()
        watch.stop()
