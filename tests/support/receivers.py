"""Real notification receivers on 127.0.0.1: a webhook (HTTP) server and an SMTP server.

apprise's `json://127.0.0.1:PORT/path` posts a JSON document to the webhook; its
`mailto://user:pass@127.0.0.1:PORT?...` logs in to the SMTP server (aiosmtpd) and sends
a mail. Both keep what they received, headers and logins included, for the tests to read.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.emulators import free_port

SMTP_PASSWORD = "smtp-pw-5e8a21"  # a test canary: it must never show in pgvault's output


@dataclass
class Webhook:
    """What the webhook received: each POST's path, headers and JSON body."""

    port: int
    posts: list[dict[str, Any]] = field(default_factory=list)

    def url(self, path: str = "hook", query: str = "") -> str:
        return f"json://127.0.0.1:{self.port}/{path}" + (f"?{query}" if query else "")


@contextmanager
def webhook_server() -> Iterator[Webhook]:
    """A threaded HTTP server answering 200 to every POST and recording it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            received.append(
                {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
            )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:  # keep the test output clean
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Webhook(server.server_address[1], received)
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mailbox:
    """What the SMTP server received: each mail and the logins that sent them."""

    port: int
    user: str
    password: str
    mails: list[Message] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    def url(self, to: str = "ops@example.com") -> str:
        return (
            f"mailto://{self.user}:{self.password}@127.0.0.1:{self.port}"
            f"?to={to}&from=pgvault@example.com&mode=insecure"
        )


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.box.mails.append(message_from_bytes(envelope.content))
        return "250 OK"


@contextmanager
def smtp_server(user: str = "mailer", password: str = SMTP_PASSWORD) -> Iterator[Mailbox]:
    """aiosmtpd on 127.0.0.1 with a login (AUTH without TLS: it is a loopback test)."""
    box = Mailbox(0, user, password)

    def authenticate(
        server: object, session: object, envelope: object, mechanism: str, data: object
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            login = (data.login.decode(), data.password.decode())
            box.logins.append(login)
            return AuthResult(success=login == (user, password))
        return AuthResult(success=False)

    box.port = free_port()  # aiosmtpd checks its server by connecting: it needs a port
    controller = Controller(
        _Handler(box),
        hostname="127.0.0.1",
        port=box.port,
        authenticator=authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
