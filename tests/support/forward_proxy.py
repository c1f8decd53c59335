"""A forward HTTP proxy on 127.0.0.1, as squid is to a client: CONNECT tunnels and
absolute-form requests, optionally behind Proxy-Authorization (basic). It forwards to
127.0.0.1 only, so nothing leaves the loopback; each connection's first request is recorded
(`seen`: "CONNECT 127.0.0.1:443", "PUT http://127.0.0.1:80/c/o"), then bytes are relayed
both ways until either side closes (later requests on a kept-alive connection keep their
absolute form, which an HTTP/1.1 server accepts).
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from base64 import b64encode
from collections.abc import Iterator
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"


class ForwardProxy:
    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        self.seen: list[str] = []
        self.authorizations: list[str] = []
        expected = None
        if user is not None:
            expected = "Basic " + b64encode(f"{user}:{password}".encode()).decode()
        self._expected = expected
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        self._server = socketserver.ThreadingTCPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user is not None else ""
        return f"http://{auth}{LOOPBACK}:{self.port}"

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, client: socket.socket) -> None:
        received = _read_head(client)
        if received is None:
            return
        head, _, rest = received.partition(b"\r\n\r\n")  # rest: the body's first bytes
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = [line for line in lines[1:] if line]
        auth = [h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("proxy-auth")]
        self.authorizations += auth
        if self._expected is not None and auth != [self._expected]:
            client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n")
            client.sendall(b'Proxy-Authenticate: Basic realm="p"\r\nContent-Length: 0\r\n\r\n')
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            self.seen.append(f"CONNECT {target}")
            with _upstream(host, int(port)) as server:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _relay(client, server)
            return
        url = urlsplit(target)
        self.seen.append(f"{method} {target}")
        kept = [h for h in headers if not h.lower().startswith("proxy-")]
        path = url.path + (f"?{url.query}" if url.query else "")
        forward = "\r\n".join([f"{method} {path} {version}", *kept, "", ""]).encode("latin-1")
        with _upstream(url.hostname or "", url.port or 80) as server:
            server.sendall(forward + rest)
            _relay(client, server)


def _read_head(sock: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data


@contextlib.contextmanager
def _upstream(host: str, port: int) -> Iterator[socket.socket]:
    if host not in (LOOPBACK, "localhost"):
        raise RuntimeError(f"the test proxy forwards to the loopback only, not {host}")
    server = socket.create_connection((LOOPBACK, port), timeout=30)
    try:
        yield server
    finally:
        server.close()


def _relay(client: socket.socket, server: socket.socket) -> None:
    def pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(262144):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    back = threading.Thread(target=pump, args=(server, client), daemon=True)
    back.start()
    pump(client, server)
    back.join(60)
