"""A WebDAV streaming upload: one chunked PUT whose parts are sent in order as they come,
kept alive while it waits for them (a paused job, a slow producer).

A server drops a request body that stays silent for long (nginx's client_body_timeout, 60 s
by default), and the parts already sent went with that request: a paused backup failed when
resumed. While no part is being sent, the upload sends one byte every `keepalive_seconds()`
of silence: a leading zero of the next chunk's size line, which HTTP/1.1 allows (chunk-size
is 1*HEXDIG) and which adds nothing to the body ("000" then "40000" is a chunk of 0x40000
bytes, "000" then "0" the last chunk). nginx and Apache read any number of them; a server
that caps the length of that line (Go's net/http at 4 KiB) still drops a pause longer than
about 4096 such bytes (11 h at the default 10 s).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import threading
import time
from dataclasses import dataclass, field

from core import errors
from core.storage.objects import PutOptions

KEEPALIVE_ENV = "PGVAULT_DAV_KEEPALIVE"
#: seconds of silence before a keepalive byte: well under nginx's 60 s and Apache's 20 s
DEFAULT_KEEPALIVE = 10.0


def keepalive_seconds() -> float:
    """PGVAULT_DAV_KEEPALIVE (seconds, for a server that waits less than 10 s), else 10."""
    text = os.environ.get(KEEPALIVE_ENV)
    if not text:
        return DEFAULT_KEEPALIVE
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.1 <= value <= 3600:  # noqa: PLR2004 - also refuses nan
        raise errors.InputError(f"{KEEPALIVE_ENV} must be 0.1 to 3600 seconds, not {text!r}")
    return value


@dataclass
class Upload:
    """One chunked PUT: its parts in order (`ready`), one writer on the wire at a time."""

    key: str
    upload_id: str
    options: PutOptions
    connection: http.client.HTTPConnection
    next_part: int = 1
    broken: bool = False
    finished: bool = False
    ready: threading.Condition = field(default_factory=threading.Condition)
    #: held for each write on the connection: a part's chunk, a keepalive byte, the end
    wire: threading.Lock = field(default_factory=threading.Lock)
    #: when the request last sent bytes
    last_sent: float = field(default_factory=time.monotonic)
    #: the body is over (or the upload given up): no keepalive byte may follow
    ended: threading.Event = field(default_factory=threading.Event)

    def keep_alive(self, interval: float) -> None:
        """Start sending a keepalive byte after each `interval` seconds of silence."""
        threading.Thread(
            target=self._keepalive,
            args=(interval,),
            name=f"dav-keepalive-{self.upload_id}",
            daemon=True,
        ).start()

    def _keepalive(self, interval: float) -> None:
        while not self.ended.wait(min(1.0, interval / 4)):
            with self.wire:
                if self.ended.is_set() or time.monotonic() - self.last_sent < interval:
                    continue
                try:
                    self.connection.send(b"0")
                except OSError:
                    return  # the next part or the end meets the error and says it
                self.last_sent = time.monotonic()

    def send_chunk(self, data: memoryview) -> None:
        with self.wire:
            self.connection.send(b"%x\r\n" % len(data))
            self.connection.send(data)
            self.connection.send(b"\r\n")
            self.last_sent = time.monotonic()

    def send_end(self) -> None:
        """The last chunk: the body is complete."""
        with self.wire:
            self.ended.set()
            self.connection.send(b"0\r\n\r\n")

    def fail(self) -> None:
        """A part broke: the request cannot be continued; the parts waiting give up."""
        self.ended.set()
        with self.ready:
            self.broken = True
            self.ready.notify_all()

    def part_sent(self) -> None:
        with self.ready:
            self.next_part += 1
            self.ready.notify_all()

    def close(self) -> None:
        self.ended.set()
        with contextlib.suppress(OSError):
            self.connection.close()

    def lost(self, what: str, exc: OSError) -> errors.StorageError:
        """The server dropped the request (the connection broke)."""
        idle = time.monotonic() - self.last_sent
        return errors.StorageError(
            f"{what}: the server closed the upload ({exc}) after {idle:.0f} s without data; "
            "a failed backup job continues with `jobs resume`"
        )


__all__ = ["KEEPALIVE_ENV", "Upload", "keepalive_seconds"]
