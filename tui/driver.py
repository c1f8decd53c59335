"""The terminal driver: Textual's Linux driver with a lone `esc` delivered after 25 ms.

A lone ESC byte may be the start of an escape sequence (an arrow key, a mouse report), so a
terminal program waits a moment for the rest before calling it the escape key (curses'
ESCDELAY). Textual 8.2 waits 100 ms (`ESCDELAY`), but its input thread notices the end of
that wait only when its 100 ms `select` times out, so `esc` (back, close, clear the filter)
showed 100 to 200 ms after the key: the slowest key of the console by far. This driver
waits 25 ms, as vim and most curses programs are set up to (an `ESCDELAY` in the
environment still wins), and wakes the input thread exactly when that wait ends.
Terminals send a whole sequence in one write, so 25 ms does not split real sequences,
even over SSH.
"""

from __future__ import annotations

import os
import selectors
from codecs import getincrementaldecoder
from collections.abc import Iterable

from textual import constants
from textual._parser import ParseError
from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message

#: seconds to wait for the rest of an escape sequence before calling it the esc key
ESC_DELAY = constants.ESCAPE_DELAY if "ESCDELAY" in os.environ else 0.025
#: the input thread's wake-up when nothing is pending (Textual's own), to notice exit
IDLE_WAKE = 0.1


class QuickEscapeParser(XTermParser):
    """Textual's parser with the escape wait capped at ESC_DELAY; `deadline` says when."""

    def feed(self, data: str) -> Iterable[Message]:
        yield from super().feed(data)
        # Textual keeps the pending wait's end in the base parser (`tick` acts on it).
        if self._timeout_time is not None:
            self._timeout_time = min(self._timeout_time, get_time() + ESC_DELAY)

    @property
    def deadline(self) -> float | None:
        """When a pending escape becomes the esc key (None: nothing pending)."""
        return self._timeout_time


class QuickEscapeDriver(LinuxDriver):
    """LinuxDriver whose input thread sleeps until the escape wait ends, not 100 ms."""

    def run_input_thread(self) -> None:
        # Textual's loop (LinuxDriver.run_input_thread), with the select timeout computed
        # from the parser's deadline.
        selector = selectors.SelectSelector()
        selector.register(self.fileno, selectors.EVENT_READ)
        parser = QuickEscapeParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode

        def pump(timeout: float, final: bool = False) -> None:
            for _key, mask in selector.select(timeout):
                if mask & selectors.EVENT_READ:
                    data = decode(os.read(self.fileno, 4096), final=final)
                    if not data:
                        break  # stdin piped and closed
                    for event in parser.feed(data):
                        self.process_message(event)
            for event in parser.tick():
                self.process_message(event)

        def wait() -> float:
            deadline = parser.deadline
            return IDLE_WAKE if deadline is None else max(0.0, deadline - get_time())

        try:
            while not self.exit_event.is_set():
                pump(wait())
            selector.unregister(self.fileno)
            pump(wait(), final=True)
        finally:
            selector.close()
            try:
                for _event in parser.feed(""):
                    pass
            except (EOFError, ParseError):
                pass
