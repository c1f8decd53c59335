"""HTTP_PROXY, HTTPS_PROXY and NO_PROXY for the stores that speak HTTP themselves (WebDAV).

The SDKs of S3, Azure and GCS honour these variables; so does this, as urllib and requests
read them (either case; NO_PROXY names hosts, `.domain` suffixes, `host:port` or `*`). A
plain-http request goes to the proxy with its absolute URL; an https one through a CONNECT
tunnel, TLS (and its certificate check) end to end with the server. A user and password in
the proxy's URL are sent as Proxy-Authorization and registered as secrets.
"""

from __future__ import annotations

import os
import urllib.request
from base64 import b64encode
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from core.errors import InputError
from core.secrets import register_secret

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Proxy:
    """Where a connection to `scheme://host` goes instead, and its credentials."""

    host: str
    port: int
    variable: str  # the variable that named it, for messages
    authorization: str | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        """The proxy as messages name it (never its password)."""
        return f"http://{self.host}:{self.port} (from {self.variable})"

    def headers(self) -> dict[str, str]:
        return {"Proxy-Authorization": self.authorization} if self.authorization else {}


def proxy_for(scheme: str, netloc: str) -> Proxy | None:
    """The proxy the environment names for scheme://netloc, or None (direct, NO_PROXY)."""
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme)
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not url or bypass(netloc, proxies):
        return None
    lower = f"{scheme}_proxy"  # urllib's choice when both cases are set
    return _parse(url, lower if os.environ.get(lower) else lower.upper())


def _parse(url: str, variable: str) -> Proxy:
    if "://" not in url:
        url = f"http://{url}"  # as urllib and requests take "proxy:3128"
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise InputError(
            f"{variable}: only an http:// proxy is supported (got {parts.scheme}://): "
            "https to the server still goes through it, in a CONNECT tunnel"
        )
    try:
        port = parts.port or _DEFAULT_PORTS["http"]
    except ValueError:
        raise InputError(f"{variable}: the proxy's port is not a number") from None
    if not parts.hostname:
        raise InputError(f"{variable}: no proxy host in it")
    authorization = None
    if parts.username is not None:
        user, password = unquote(parts.username), unquote(parts.password or "")
        if parts.password:
            register_secret(parts.password)
            register_secret(password)
        token = b64encode(f"{user}:{password}".encode()).decode()
        register_secret(token)
        authorization = f"Basic {token}"
    return Proxy(parts.hostname, port, variable, authorization)


__all__ = ["Proxy", "proxy_for"]
