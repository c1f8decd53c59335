"""Notification URLs (apprise's: `json://`, `mailto://`, `tgram://` ...): checked, redacted.

A notification URL often carries a secret: a password (`mailto://user:pass@host`), a token
in a query or a header (`?token=`, `?+X-Token=`), or a token in its path (`tgram://BOT/..`).
`redact_notify_url` masks all three; the path ones are those apprise's own privacy form
hides. Every masked value is registered with core.secrets, so a log line or an error that
quotes one is masked too. apprise is imported only when a URL is looked at.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, unquote

from core.errors import InputError
from core.secrets import MASK, MIN_SECRET_LENGTH, register_secret

# query keys whose value is a secret (apprise's `+name` headers are always treated as one)
_SECRET_KEY = re.compile(r"(?i)(token|key|secret|pass|pwd|auth|sig|cred|webhook)")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)
_PIECES = re.compile(r"[^/:@?&=#]+")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def apprise_messages() -> Iterator[list[str]]:
    """apprise's warnings and errors, collected instead of printed (pgvault reports them
    itself, as one line, redacted)."""
    logger = logging.getLogger("apprise")
    handler = _Collect()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


@lru_cache(maxsize=256)
def _plugin_privacy_url(url: str) -> str | None:
    """apprise's privacy form of the URL (its secrets shown as `****`), None if unknown."""
    import apprise

    with apprise_messages():
        plugin: Any = apprise.Apprise.instantiate(url)
    if plugin is None:
        return None
    return str(plugin.url(privacy=True))


def _secret_query_values(query: str) -> list[str]:
    return [
        value
        for key, value in parse_qsl(query, keep_blank_values=True)
        if value and (key.startswith("+") or _SECRET_KEY.search(key))
    ]


def secrets_of(url: str) -> list[str]:
    """The secret parts of a notification URL: password, secret query values, path tokens."""
    match = _SCHEME.match(url.strip())
    if match is None:
        return []
    rest = match.group(2)
    head, _, query = rest.partition("?")
    found = _secret_query_values(query)
    userinfo = head.split("/", 1)[0].rpartition("@")[0]
    if ":" in userinfo:
        found.append(userinfo.split(":", 1)[1])
    private = _plugin_privacy_url(url)
    if private is not None:
        shown = unquote(private)
        # a piece of the address apprise does not show in its privacy form is a secret
        found += [
            piece
            for piece in _PIECES.findall(head)
            if len(piece) >= MIN_SECRET_LENGTH and unquote(piece) not in shown
        ]
    return sorted({unquote(value) for value in found} | set(found), key=len, reverse=True)


def redact_notify_url(url: str) -> str:
    """The URL with its secrets masked (and each registered for redaction everywhere)."""
    text = url.strip()
    for secret in secrets_of(text):
        register_secret(secret)
        text = text.replace(secret, MASK)
    return text


def register_notify_secrets(urls: tuple[str, ...]) -> None:
    """Register every secret of these URLs, so that no log line or error can show one."""
    for url in urls:
        redact_notify_url(url)


def check_notify_urls(
    urls: list[str] | tuple[str, ...], where: str = "--notify"
) -> tuple[str, ...]:
    """Each URL must be one apprise can send to; InputError (exit 3) names it, redacted."""
    checked: list[str] = []
    for url in urls:
        text = url.strip()
        shown = redact_notify_url(text)
        if _SCHEME.match(text) is None or _plugin_privacy_url(text) is None:
            raise InputError(
                f"{where} {shown}: not a notification URL apprise can send to "
                "(e.g. json://host/path or mailto://user@host?to=ADDRESS, see apprise's wiki); "
                "nothing was stored"
            )
        if text not in checked:
            checked.append(text)
    return tuple(checked)


__all__ = [
    "apprise_messages",
    "check_notify_urls",
    "redact_notify_url",
    "register_notify_secrets",
    "secrets_of",
]
