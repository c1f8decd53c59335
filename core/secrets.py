"""Keep secrets out of every message: a registry of known secret values plus patterns.

This module owns credential stripping too: `redact` masks secrets inside any text,
`without_query` and `without_password` remove them from a URL or a PostgreSQL connection
string that is kept (a job record, a message), and `log_redacted_to_stderr` is how every
pgvault process logs. A parsed destination drops its credentials with
`core.urls.Location.without_credentials()`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from urllib.parse import quote, quote_plus

_lock = threading.Lock()
_known: set[str] = set()

# key=value pairs whose value is a secret, in connection strings, conninfo and URL queries.
_PAIR = re.compile(
    r"(?i)\b(AccountKey|SharedAccessSignature|sig|password|passwd|secret|token|"
    r"AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|AZURE_ACCOUNT_KEY|AZURE_STORAGE_KEY|"
    r"AZURE_STORAGE_SAS_TOKEN|CREDENTIALS|passphrase|encryption_passphrase)"
    r"(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|[^\s;&'\"]+)"
)
# A quoted secret header or field followed by its quoted value, as SDKs log them:
# botocore's {'X-Amz-Security-Token': b'...'}, a JSON "private_key": "...".
_QUOTED_PAIR = re.compile(
    r"(?i)((['\"])[\w.-]*(?:token|secret|password|passwd|passphrase|authorization|"
    r"accountkey|account_key|private_key|signature)\2\s*[:=]\s*)(b?'[^']*'|b?\"[^\"]*\")"
)
# user:password@ in URLs and libpq URIs.
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)(@)")
MASK = "***"
#: shorter values are not remembered: masking them would garble ordinary words
MIN_SECRET_LENGTH = 4
# A PostgreSQL password in a conninfo string, a URI's user:password@ and a URI's ?password=.
_CONNINFO_PASSWORD = re.compile(r"(?i)\s*\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")
_URI_PASSWORD = re.compile(r"(?i)^(postgres(?:ql)?://[^/:@]*):[^@/]*@")
_URI_QUERY_PASSWORD = re.compile(r"(?i)([?&])password=[^&]*&?")
#: SDK loggers that stay at WARNING unless their details are asked for (-vv)
SDK_LOGGERS = ("botocore", "boto3", "urllib3", "azure", "google", "s3transfer", "apprise")
#: environment variables whose whole value is a secret, read by pgvault or by a cloud SDK
SECRET_ENVIRONMENT = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "PGPASSWORD",
    "PGVAULT_ENCRYPTION_PASSPHRASE",
    "PGVAULT_ENCRYPTION_IDENTITY",
)


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is masked wherever it would be printed.

    Its encoded forms (in a URL, in JSON) and the secret pairs inside it (a connection
    string's AccountKey, a SAS token's sig, a conninfo's password) are remembered too.
    """
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
    forms |= {_unquoted(m.group(3)) for m in _PAIR.finditer(value)}
    with _lock:
        _known.update(form for form in forms if len(form) >= MIN_SECRET_LENGTH)


def _unquoted(text: str) -> str:
    quoted = len(text) > 1 and text[0] == text[-1] and text[0] in "'\""
    return text[1:-1] if quoted else text


def register_environment_secrets() -> None:
    """Register the secrets of this process's environment (once, at each entry point)."""
    for name in SECRET_ENVIRONMENT:
        register_secret(os.environ.get(name))


def redact(text: str) -> str:
    """Return text with every registered secret and secret-looking pair masked."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    text = _QUOTED_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}{m.group(2)}", text)
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


_USERINFO_PASSWORD = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/:@]*):[^/@]*@")


def without_query(url: str) -> str:
    """A URL with its query string and userinfo password (where destination credentials
    live) removed: dav://user:secret@host/x?A=b is shown as dav://user@host/x."""
    return _USERINFO_PASSWORD.sub(r"\1@", url.split("?", 1)[0])


def without_password(dbname: str) -> str:
    """A conninfo string or URI with its password removed (the rest kept for a resume)."""
    if not dbname.lower().startswith(("postgres://", "postgresql://")):
        return _CONNINFO_PASSWORD.sub("", dbname).strip()
    text = _URI_PASSWORD.sub(r"\1@", dbname)
    return _URI_QUERY_PASSWORD.sub(r"\1", text).rstrip("?&")


def log_redacted_to_stderr(fmt: str, verbosity: int, *, sdk_details: bool) -> None:
    """Log to stderr through redact(): WARNING, one level down per -v, up per -q.

    The cloud SDKs' loggers stay at WARNING or above unless `sdk_details` (-vv).
    """
    level = max(logging.DEBUG, min(logging.CRITICAL, logging.WARNING - 10 * verbosity))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(level if sdk_details else max(level, logging.WARNING))
