"""Keep secrets out of every message: a registry of known secret values plus patterns."""

from __future__ import annotations

import logging
import re
import threading

_lock = threading.Lock()
_known: set[str] = set()

# key=value pairs whose value is a secret, in connection strings, conninfo and URL queries.
_PAIR = re.compile(
    r"(?i)\b(AccountKey|SharedAccessSignature|sig|password|passwd|secret|token|"
    r"AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|AZURE_ACCOUNT_KEY|AZURE_STORAGE_KEY|"
    r"AZURE_STORAGE_SAS_TOKEN|CREDENTIALS|passphrase|encryption_passphrase)"
    r"(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|[^\s;&'\"]+)"
)
# user:password@ in URLs and libpq URIs.
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)(@)")
MASK = "***"


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is masked wherever it would be printed."""
    if value and len(value) >= 4:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    """Return text with every registered secret and secret-looking pair masked."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    text = _PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the rendered message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class RedactingFormatter(logging.Formatter):
    """A formatter that redacts the whole rendered record, tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
