"""The console's input parser: a lone esc is the escape key after ESC_DELAY, not 100 ms."""

from __future__ import annotations

import time

from textual import events
from textual._time import get_time

from tui.driver import ESC_DELAY, QuickEscapeParser


def keys(messages: object) -> list[str]:
    return [m.key for m in messages if isinstance(m, events.Key)]  # type: ignore[attr-defined]


def test_a_lone_esc_becomes_the_escape_key_once_the_short_wait_ends() -> None:
    parser = QuickEscapeParser()
    before = get_time()
    assert keys(parser.feed("\x1b")) == []  # perhaps the start of a sequence
    deadline = parser.deadline
    assert deadline is not None and deadline <= before + ESC_DELAY + 0.01
    assert ESC_DELAY <= 0.03
    time.sleep(max(0.0, deadline - get_time()) + 0.005)
    assert keys(parser.tick()) == ["escape"]
    assert parser.deadline is None


def test_whole_sequences_and_plain_keys_are_unchanged() -> None:
    parser = QuickEscapeParser()
    assert keys(parser.feed("\x1b[A")) == ["up"]
    assert keys(parser.feed("j")) == ["j"]
    assert parser.deadline is None
