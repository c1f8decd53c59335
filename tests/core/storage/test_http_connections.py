"""The kept-alive connection of the standard-library HTTP stores, after a request that failed."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.storage.clients import Timeouts
from core.storage.http_connections import ThreadConnections, connect


class _SlowFirst(BaseHTTPRequestHandler):
    """Answers the first request after 3 s (past the client's 1 s read timeout), then at once."""

    protocol_version = "HTTP/1.1"
    calls = 0

    def do_GET(self) -> None:
        type(self).calls += 1
        if type(self).calls == 1:
            time.sleep(3)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow_first() -> Iterator[str]:
    _SlowFirst.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowFirst)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _get(connection: http.client.HTTPConnection) -> bytes:
    connection.request("GET", "/")
    return connection.getresponse().read()


def test_a_timed_out_request_does_not_poison_the_next_one(slow_first: str) -> None:
    connections = ThreadConnections(lambda: connect("http", slow_first, Timeouts(5, 1), None, "-"))
    with pytest.raises(socket.timeout):
        connections.exchange(_get)
    # The timed-out connection is mid-request; reused, http.client would refuse with
    # CannotSendRequest('Request-sent') for ever (the async pusher's storm failure).
    _, body = connections.exchange(_get)
    assert body == b"ok"
    assert _SlowFirst.calls == 2
