"""Notification URLs (apprise's: `json://`, `mailto://`, `tgram://` ...): checked, redacted.

A notification URL often carries a secret: a password (`mailto://user:pass@host`), a token
in a query or a header (`?token=`, `?+X-Token=`), or a token in its path (`tgram://BOT/..`).
`redact_notify_url` masks all three; the path ones are those apprise's own privacy form
hides. Every masked value is registered with core.secrets, so a log line or an error that
quotes one is masked too. apprise is imported only when a URL is looked at.

The vault stores what `--notify` names, and any agent host must read it, so a URL holding a
secret is refused unless the operator opts in (ALLOW_INLINE): it is given instead as a
secret reference (`env:NAME`, `file:/PATH`, `keyring:SERVICE/USERNAME`) whose value is the
whole URL, stored as the reference and read only when a notice is sent.
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
from core.protection.secretref import SecretReference, SecretStoreType
from core.secrets import MASK, MIN_SECRET_LENGTH, register_secret

#: the flag that stores a URL holding a secret in the vault as it is
ALLOW_INLINE = "--allow-secret-in-vault"

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


def is_reference(text: str) -> bool:
    """A secret reference naming a whole URL (env:, file:, keyring:), not a URL itself."""
    kind, sep, _ = text.strip().partition(":")
    return bool(sep) and kind in SecretStoreType.__members__.values() and "://" not in text


def redact_notify_url(url: str) -> str:
    """The URL with its secrets masked (and each registered for redaction everywhere);
    a secret reference is shown as it is (it is no secret)."""
    text = url.strip()
    if is_reference(text):
        return text
    for secret in secrets_of(text):
        register_secret(secret)
        text = text.replace(secret, MASK)
    return text


def register_notify_secrets(urls: tuple[str, ...]) -> None:
    """Register every secret of these URLs, so that no log line or error can show one
    (a reference's URL is registered when it is read, in resolve_notify_url)."""
    for url in urls:
        redact_notify_url(url)


def resolve_notify_url(target: str, where: str = "notification URL reference") -> str:
    """The URL to send to: the target itself, or the URL its reference holds (read now,
    its secrets registered); InputError names the reference, never the URL."""
    text = target.strip()
    if not is_reference(text):
        return text
    url = SecretReference.parse(text, where).resolve().strip()
    redact_notify_url(url)
    return url


def _checked(text: str, where: str, allow_inline: bool) -> None:
    try:
        url = resolve_notify_url(text)
    except InputError as exc:
        raise InputError(f"{where}: {exc}; nothing was stored") from None
    shown = text if is_reference(text) else redact_notify_url(text)
    if _SCHEME.match(url) is None or _plugin_privacy_url(url) is None:
        holds = " holds a URL that is" if is_reference(text) else ":"
        raise InputError(
            f"{where} {shown}{holds} not a notification URL apprise can send to "
            "(e.g. json://host/path or mailto://user@host?to=ADDRESS, see apprise's wiki); "
            "nothing was stored"
        )
    if not is_reference(text) and not allow_inline and secrets_of(url):
        raise InputError(
            f"{where} {shown}: the URL holds a password or token, which the vault would store "
            "in clear in its destination; put the whole URL in a secret store and give its "
            "reference (env:NAME, file:/PATH or keyring:SERVICE/USERNAME), or add "
            f"{ALLOW_INLINE} to store it as it is; nothing was stored"
        )


def check_notify_urls(
    urls: list[str] | tuple[str, ...], where: str = "--notify", allow_inline: bool = False
) -> tuple[str, ...]:
    """Each URL (or reference, read now) must be one apprise can send to, and a URL may hold
    no secret unless `allow_inline`; InputError (exit 3) names it, redacted."""
    checked: list[str] = []
    for url in urls:
        text = url.strip()
        _checked(text, where, allow_inline)
        if text not in checked:
            checked.append(text)
    return tuple(checked)


__all__ = [
    "ALLOW_INLINE",
    "apprise_messages",
    "check_notify_urls",
    "is_reference",
    "redact_notify_url",
    "register_notify_secrets",
    "resolve_notify_url",
    "secrets_of",
]
