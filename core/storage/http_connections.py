"""Kept-alive HTTP connections, one per thread, for the stores that speak HTTP through the
standard library (core.storage.s3_http and core.storage.webdav)."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from core.errors import InputError
from core.storage.clients import Timeouts
from core.storage.proxies import Proxy

if TYPE_CHECKING:
    import ssl

T = TypeVar("T")
#: OpenSSL's verify codes for a certificate whose issuer is not trusted here: self-signed
#: (18), self-signed in the chain (19), issuer unknown (20), first one unverifiable (21)
_UNKNOWN_ISSUER = (18, 19, 20, 21)

#: what a kept-alive connection the server closed meanwhile raises on its next request
STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class Unreachable(Exception):
    """The server could not be connected to (refused, no such host, TLS not trusted)."""


def connect(
    scheme: str,
    host: str,
    timeouts: Timeouts,
    cafile: str | None,
    ca_names: str,
    proxy: Proxy | None = None,
) -> http.client.HTTPConnection:
    """A new connection to scheme://host, its socket on the read timeout once connected.

    `ca_names`: the environment variables that name a CA bundle (cafile), for messages.
    `proxy`: connect to it instead; https goes through a CONNECT tunnel (plain http sends
    absolute URLs to it: the caller's request targets)."""
    origin = f"{scheme}://{host}"
    if proxy is not None:
        origin = f"{origin} through the proxy {proxy.display}"
    address = {"host": proxy.host, "port": proxy.port} if proxy else {"host": host}
    connection: http.client.HTTPConnection
    if scheme == "https":
        import ssl  # imported here: archive_command's plain-http calls never pay for it

        context = _tls_context(cafile, ca_names)
        connection = http.client.HTTPSConnection(
            **address, timeout=timeouts.connect, context=context
        )
        if proxy is not None:
            connection.set_tunnel(host, headers=proxy.headers())
        untrusted: type[Exception] = ssl.SSLCertVerificationError
    else:
        connection = http.client.HTTPConnection(**address, timeout=timeouts.connect)
        untrusted = _Never
    try:
        connection.connect()
    except untrusted as exc:
        reason = getattr(exc, "verify_message", exc)
        hint = ""
        if getattr(exc, "verify_code", None) in _UNKNOWN_ISSUER:
            hint = (
                f": the CA bundle {cafile} (from {ca_names}) does not hold the CA that signed it"
                if cafile
                else f": name the CA that signed it in {ca_names} (a PEM file)"
            )
        raise Unreachable(f"{origin}: TLS certificate not trusted ({reason}){hint}") from None
    except OSError as exc:
        raise Unreachable(f"{origin}: {exc.strerror or exc}") from None
    if connection.sock is not None:
        connection.sock.settimeout(timeouts.read)
    return connection


def _tls_context(cafile: str | None, ca_names: str) -> ssl.SSLContext:
    """The client context: the system's authorities, or the bundle a variable names (one
    that cannot be read is bad input, said once, never a connection error retried)."""
    import ssl

    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise InputError(
            f"the CA bundle {cafile} (from {ca_names}) cannot be used ({reason}): "
            "name a readable PEM file of CA certificates"
        ) from None


class _Never(Exception):
    """Raised by nothing: the certificate error of a plain-http connection."""


class ThreadConnections:
    """Each thread's kept-alive connection, made by `opener` when it has none; close()
    closes every thread's (a pool's workers outlive the store they served)."""

    def __init__(self, opener: Callable[[], http.client.HTTPConnection]) -> None:
        self._opener = opener
        self._local = threading.local()
        self._lock = threading.Lock()
        self._every: set[http.client.HTTPConnection] = set()

    def shared(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether it served a request before."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None and connection.sock is not None:
            return connection, True
        fresh = self._opener()
        with self._lock:
            if connection is not None:
                self._every.discard(connection)
            self._every.add(fresh)
        self._local.connection = fresh
        return fresh, False

    def exchange(
        self, send: Callable[[http.client.HTTPConnection], T]
    ) -> tuple[http.client.HTTPConnection, T]:
        """send() (a request and the reading of its answer) on this thread's connection, once
        more on a new one if the kept-alive connection had been closed by the server meanwhile."""
        connection, reused = self.shared()
        try:
            return connection, _closing_on_error(connection, send)
        except STALE:
            if not reused:
                raise
        connection, _ = self.shared()
        return connection, _closing_on_error(connection, send)

    def close_mine(self) -> None:
        """Close this thread's connection (its next request opens a new one); the other
        threads' may be in the middle of a request."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close every thread's connection (each thread's next request opens a new one)."""
        with self._lock:
            every, self._every = self._every, set()
        for connection in every:
            connection.close()


def _closing_on_error(
    connection: http.client.HTTPConnection, send: Callable[[http.client.HTTPConnection], T]
) -> T:
    try:
        return send(connection)
    except BaseException:
        # A timed-out or cut exchange leaves the connection mid-request: http.client would
        # refuse every later request on it ("Request-sent"), so the next one opens anew.
        connection.close()
        raise
