"""The WebDAV store's errors: a server's error status as an exception, and the table that
turns it (and transport failures) into pgvault's errors with their exit codes."""

from __future__ import annotations

import http.client

from core import errors
from core.storage.http_connections import Unreachable
from core.storage.translate import SERVER_ERRORS, ErrorTable, Facts, Rule


class DavAnswer(Exception):
    """An error status from the server."""

    def __init__(self, status: int, reason: str, anonymous: bool = False) -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status = status
        self.reason = reason
        #: the request carried no credentials (no user or password was found anywhere)
        self.anonymous = anonymous


def _anonymous(exc: BaseException) -> bool:
    return bool(getattr(exc, "anonymous", False))


def _facts(exc: BaseException) -> Facts:
    if isinstance(exc, DavAnswer):
        return {"status": exc.status, "reason": exc.reason}
    return {}


_ANSWER = (DavAnswer,)
ERRORS = ErrorTable(
    (
        Rule(errors.ObjectNotFound, "{what}: not found", _ANSWER, statuses={404}),
        Rule(errors.ObjectExists, "{what}: object already exists", _ANSWER, statuses={412}),
        Rule(
            errors.AccessDenied,
            "{what}: the WebDAV server asks for a user and password (HTTP {status} {reason}) "
            "and none was given: put the user in the URL (dav://USER@HOST/...) and the "
            "password in PGVAULT_DAV_PASSWORD or a --credentials-file",
            _ANSWER,
            statuses={401},
            when=_anonymous,
        ),
        Rule(
            errors.AccessDenied,
            "{what}: access denied (HTTP {status} {reason})",
            _ANSWER,
            statuses={401, 403},
        ),
        Rule(
            errors.NoSpace,
            "{what}: the WebDAV server has no room for it (HTTP {status} {reason}): free "
            "space or raise the quota there",
            _ANSWER,
            statuses={507},
        ),
        Rule(
            errors.StorageError,
            "{what}: the WebDAV server refuses a request body this large (HTTP {status} "
            "{reason}): raise its limit (nginx: client_max_body_size 0; a WAL segment or "
            "backup archive is sent in one request)",
            _ANSWER,
            statuses={413},
        ),
        Rule(
            errors.TransientError,
            "{what}: HTTP {status} {reason}",
            _ANSWER,
            statuses={408, 429, *SERVER_ERRORS},
        ),
        Rule(errors.StorageError, "{what}: HTTP {status} {reason}", _ANSWER),
        Rule(
            errors.EndpointUnreachable,
            "{what}: cannot reach the WebDAV server ({exc})",
            (Unreachable,),
        ),
        Rule(errors.TransientError, "{what}: {exc}", (http.client.HTTPException, OSError)),
    ),
    _facts,
)


def refused_upload(answer: DavAnswer, what: str) -> errors.PgvaultError:
    """The error of a streaming upload the server refused once its body had been sent: the
    parts went with that one request, so no retry can send them again, and a server error
    (nginx answers 500 when its disk is full) is no transient one here."""
    error = ERRORS.translate(answer, what)
    if error is None or isinstance(error, errors.TransientError):
        return errors.StorageError(
            f"{what}: the server refused the upload once it was sent (HTTP {answer.status} "
            f"{answer.reason}; nginx answers 500 when its disk is full): see the server's "
            "error log"
        )
    return error
