"""An HTTP proxy on 127.0.0.1 that injects network faults in front of an object-store emulator.

Each request is read whole, then a plan decides its fate: passed on, answered 503 SlowDown
without reaching the emulator, cut with a TCP reset, passed on and its answer lost (the
emulator stored the object; the client sees a reset instead of the answer), stalled past
the client's read timeout (no answer, then a reset), or passed on and its answer cut half
way through the body (a download reset mid-transfer). Plans are
deterministic: a `Script` of steps in order, or `Bursts` drawn from a seeded generator.
The SDKs speak plain HTTP/1.1 to emulators, so the proxy speaks it too.
"""

from __future__ import annotations

import contextlib
import enum
import http.client
import json
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from tests.support.destinations import TestDestination
from tests.support.emulators import Emulator, azurite_connection_string


class Fault(enum.Enum):
    PASS = "pass"
    UNAVAILABLE = "503"  # answered 503 SlowDown / ServerBusy, never sent on
    RESET = "reset"  # the connection is reset before the request is sent on
    LOSE_ANSWER = "lose-answer"  # sent on and done, then the answer is replaced by a reset
    STALL = "stall"  # never answered: held for the proxy's stall seconds, then reset
    TRUNCATE = "truncate"  # sent on; the answer's headers and half its body, then a reset
    NOT_IMPLEMENTED = "501"  # answered 501 NotImplemented (a store without that request)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes

    @property
    def query(self) -> str:
        return urlsplit(self.path).query

    @property
    def route(self) -> str:
        return urlsplit(self.path).path


def is_listing(request: Request) -> bool:
    """A listing on S3 (list-type=2), Azure (comp=list), GCS (GET .../o) or WebDAV (PROPFIND
    of a collection: its path ends with /)."""
    if request.method == "PROPFIND":
        return request.route.endswith("/")
    if request.method != "GET":
        return False
    return (
        "list-type=" in request.query
        or "comp=list" in request.query
        or (request.route.startswith("/storage/v1/b/") and request.route.endswith("/o"))
    )


def is_object_write(request: Request) -> bool:
    """A whole-object write: S3 PutObject, Azure Put Blob, a GCS upload."""
    if request.method == "POST":
        return request.route.startswith("/upload/storage/v1/b/")
    if request.method != "PUT":
        return False
    special = ("comp=", "uploadId=", "partNumber=", "tagging", "restype=")
    return not any(word in request.query for word in special)


def is_object_lock_configuration(request: Request) -> bool:
    """S3 GetObjectLockConfiguration (GET ?object-lock on the bucket)."""
    return request.method == "GET" and "object-lock" in request.query.split("&")


def anything(request: Request) -> bool:
    return True


@dataclass
class Step:
    """Apply `fault` to the next `times` requests that `match`."""

    match: Callable[[Request], bool]
    fault: Fault
    times: int = 1


@dataclass
class Script:
    """Steps in order: a step is armed only once the one before it is used up; requests the
    armed step does not match pass."""

    steps: list[Step]

    def decide(self, request: Request) -> Fault:
        while self.steps and self.steps[0].times <= 0:
            self.steps.pop(0)
        if not self.steps or not self.steps[0].match(request):
            return Fault.PASS
        step = self.steps[0]
        step.times -= 1
        return step.fault

    @property
    def done(self) -> bool:
        return all(step.times <= 0 for step in self.steps)


@dataclass
class Bursts:
    """Faults in bursts: a two-state (calm/storm) channel driven by a seeded generator.

    Before each request a calm channel turns stormy with probability `onset` and a stormy
    one calms with probability `calm`. In a storm a request fails with probability
    `density`: a write meets one of `write_faults` (by default sent on and its answer lost:
    its retry meets the stored object), anything else one of `faults` (by default answered
    503 SlowDown or reset). The first `outage` requests are all answered 503 (the store
    throttles as archiving starts). With `lose_first_write`, the first object write after the
    outage meets the first of `write_faults` whatever the channel: which requests the storms
    hit depends on timing (PostgreSQL's archiver, the store's retries under load), and a run
    must not go without a lost answer.
    """

    seed: int
    onset: float = 0.2
    calm: float = 0.3
    density: float = 0.5
    outage: int = 0
    faults: tuple[Fault, ...] = (Fault.UNAVAILABLE, Fault.RESET)
    write_faults: tuple[Fault, ...] = (Fault.LOSE_ANSWER,)
    lose_first_write: bool = False
    _stormy: bool = field(init=False, default=False)
    _random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def decide(self, request: Request) -> Fault:
        if self.outage > 0:
            self.outage -= 1
            return Fault.UNAVAILABLE
        if self.lose_first_write and is_object_write(request):
            self.lose_first_write = False
            return self.write_faults[0]
        draw = self._random.random
        self._stormy = draw() >= self.calm if self._stormy else draw() < self.onset
        if not self._stormy or draw() >= self.density:
            return Fault.PASS
        if is_object_write(request):
            return self._pick(self.write_faults)
        return self._pick(self.faults)

    def _pick(self, faults: tuple[Fault, ...]) -> Fault:
        if len(faults) == 1:
            return faults[0]
        return faults[min(len(faults) - 1, int(self._random.random() * len(faults)))]


Plan = Script | Bursts
_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream_port: int, plan: Plan, stall: float, rate: float | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream_port = upstream_port
        self.plan = plan
        self.stall = stall
        self.rate = rate  # bytes/s of each answer's body, None for as fast as it goes
        self.sent = 0  # answer body bytes written to the clients' sockets so far
        self.closing = threading.Event()
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str, Fault]] = []
        self.received = 0  # request body bytes: what clients sent on the wire
        self.answered = 0  # answer body bytes passed on from the emulator

    def decide(self, request: Request) -> Fault:
        with self.lock:
            self.received += len(request.body)
            fault = self.plan.decide(request)
            self.seen.append((request.method, request.path, fault))
            return fault


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        return None

    def finish(self) -> None:
        with contextlib.suppress(OSError):  # a connection this proxy reset on purpose
            super().finish()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                out += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(out)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        request = Request(self.command, self.path, self._body())
        fault = self.server.decide(request)
        if fault is Fault.RESET:
            self._reset()
        elif fault is Fault.UNAVAILABLE:
            self._unavailable(request)
        elif fault is Fault.NOT_IMPLEMENTED:
            self._not_implemented()
        elif fault is Fault.STALL:
            self.server.closing.wait(self.server.stall)
            self._reset()
        else:
            answer = self._forward(request)
            with self.server.lock:
                self.server.answered += len(answer[2])
            if fault is Fault.LOSE_ANSWER:
                self._reset()
            elif fault is Fault.TRUNCATE and self.command != "HEAD" and len(answer[2]) > 1:
                self._reply(*answer, cut=True)
                self._reset()
            else:
                self._reply(*answer)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle
    do_PROPFIND = do_MKCOL = do_MOVE = _handle  # WebDAV

    def _forward(self, request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            headers["Content-Length"] = str(len(request.body))
            upstream.request(request.method, request.path, body=request.body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            return answer.status, answer.getheaders(), data
        finally:
            upstream.close()

    def _reply(
        self, status: int, headers: list[tuple[str, str]], data: bytes, cut: bool = False
    ) -> None:
        self.send_response_only(status)
        for name, value in headers:
            if name.lower() not in _HOP and not (
                name.lower() == "content-length" and self.command != "HEAD"
            ):
                self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and data:
            self._write(data[: len(data) // 2] if cut else data)

    def _write(self, data: bytes) -> None:
        """The body, at the proxy's rate if it has one (64 KiB at a time), counted as sent."""
        step = 64 * 1024 if self.server.rate else len(data)
        for start in range(0, len(data), step):
            piece = data[start : start + step]
            rate = self.server.rate  # a test may lift it mid-answer
            try:
                self.wfile.write(piece)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client went away (a killed restore)
            with self.server.lock:
                self.server.sent += len(piece)
            if rate:
                time.sleep(len(piece) / rate)

    def _unavailable(self, request: Request) -> None:
        if request.route.startswith(("/storage/", "/upload/")):
            body = json.dumps({"error": {"code": 503, "message": "Service Unavailable"}}).encode()
            kind = "application/json"
        else:
            body = (
                b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                b"<Message>Please reduce your request rate.</Message></Error>"
            )
            kind = "application/xml"
        self.send_response_only(503)
        self.send_header("Content-Type", kind)
        self.send_header("x-ms-error-code", "ServerBusy")
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _not_implemented(self) -> None:
        """S3's answer for a request the service does not implement (e.g. MinIO gateways,
        older Ceph RGW for Object Lock)."""
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code>'
            b"<Message>A header you provided implies functionality that is not implemented"
            b"</Message></Error>"
        )
        self.send_response_only(501)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        """Close with SO_LINGER 0: the client reads a TCP reset, not an answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()


class FaultProxy:
    """The proxy in a daemon thread; `endpoint` is its http://127.0.0.1:PORT. A stalled
    request is held `stall` seconds (longer than the client's --read-timeout). With `rate`,
    each answer's body goes out at that many bytes per second (a slow link)."""

    def __init__(
        self, upstream_port: int, plan: Plan, stall: float = 8.0, rate: float | None = None
    ) -> None:
        self._server = _Server(upstream_port, plan, stall, rate)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def seen(self) -> list[tuple[str, str, Fault]]:
        with self._server.lock:
            return list(self._server.seen)

    @property
    def received(self) -> int:
        """Request body bytes received so far (uploads and every other request)."""
        with self._server.lock:
            return self._server.received

    @property
    def answered(self) -> int:
        """Answer body bytes passed on so far (downloads and every other answer)."""
        with self._server.lock:
            return self._server.answered

    @property
    def sent(self) -> int:
        """Answer body bytes written to the clients so far (with a rate: as they go out)."""
        with self._server.lock:
            return self._server.sent

    def faults(self) -> list[Fault]:
        return [fault for _, _, fault in self.seen if fault is not Fault.PASS]

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


def through_proxy(
    dest: TestDestination, emulators: dict[str, Emulator], proxy: FaultProxy
) -> TestDestination:
    """The same destination reached through the proxy (by pgvault's command line with
    cli_args and env, in process with config and env)."""
    if dest.provider == "s3":
        return replace(
            dest,
            config=replace(dest.config, endpoint_url=proxy.endpoint),
            cli_args=["--endpoint-url", proxy.endpoint],
        )
    if dest.provider == "azure":
        url = dest.url.replace(emulators["azure"].endpoint, proxy.endpoint)
        env = {"AZURE_STORAGE_CONNECTION_STRING": azurite_connection_string(proxy.endpoint)}
        return replace(dest, url=url, env=env)
    if dest.provider == "http":
        return replace(dest, url=dest.url.replace(f":{emulators['http'].port}/", f":{proxy.port}/"))
    return replace(dest, env={"STORAGE_EMULATOR_HOST": proxy.endpoint})
