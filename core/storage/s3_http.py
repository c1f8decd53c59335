"""S3 through the standard library (http.client, SigV4): a store that starts in milliseconds.

archive_command starts one process per WAL file, and importing and setting up boto3 costs
more than the rest of such a call (over a second on two busy cores). This backend serves the
requests an archive_command call makes (HEAD of the bucket, GET, HEAD, LIST v2 and a single
PUT with tags, metadata, SSE, a CRC32 and If-None-Match) itself, and hands every other
request (multipart uploads, deletes, tags, storage classes) to a boto3 store it opens only
then. `open_store(..., light=True)` picks it when core.storage.sigv4 says pgvault signs
exactly as boto3 would; errors map to the same core.errors as the boto3 backend's.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import threading
import zlib
from collections.abc import Generator, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

from core import errors
from core.storage.backend import RawStream
from core.storage.bandwidth import Payload
from core.storage.clients import Timeouts
from core.storage.config import StoreConfig, check_s3_encryption
from core.storage.http_connections import ThreadConnections, Unreachable, connect
from core.storage.objects import CommonPrefix, ObjectInfo, PendingUpload, PutOptions
from core.storage.sigv4 import EMPTY_SHA256, UNSIGNED, Endpoint, Keys, moved, query_string, sign
from core.storage.store import ObjectStore
from core.storage.translate import SERVER_ERRORS, ErrorTable, Facts, Rule
from core.urls import Location, Provider

if TYPE_CHECKING:
    from core.storage.s3 import S3Store

NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}
EXISTS = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
TRANSIENT = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"}
DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
#: region redirects followed per request (a bucket answers from one region)
MAX_MOVES = 2
#: a kept-alive connection the server closed meanwhile: send again on a new one


class S3Answer(Exception):
    """An S3 error answer: its code (the HTTP status for bodiless answers) and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _facts(exc: BaseException) -> Facts:
    if isinstance(exc, S3Answer):
        return {"code": exc.code, "status": exc.status, "message": exc.message}
    return {}


_ANSWER = (S3Answer,)
ERRORS = ErrorTable(
    (
        Rule(
            errors.ContainerNotFound,
            "{what}: bucket{named} does not exist",
            _ANSWER,
            {"NoSuchBucket"},
        ),
        Rule(errors.ObjectNotFound, "{what}: not found", _ANSWER, NOT_FOUND),
        Rule(errors.ObjectExists, "{what}: object already exists", _ANSWER, EXISTS),
        Rule(errors.ObjectExists, "{what}: object already exists", _ANSWER, statuses={412}),
        Rule(errors.AccessDenied, "{what}: access denied ({code})", _ANSWER, DENIED),
        Rule(errors.AccessDenied, "{what}: access denied ({code})", _ANSWER, statuses={401, 403}),
        Rule(errors.TransientError, "{what}: {message}", _ANSWER, TRANSIENT),
        Rule(errors.TransientError, "{what}: {message}", _ANSWER, statuses=SERVER_ERRORS),
        Rule(errors.StorageError, "{what}: {code}: {message}", _ANSWER),
        Rule(
            errors.EndpointUnreachable,
            "{what}: cannot reach the S3 endpoint ({exc})",
            (Unreachable,),
        ),
        Rule(errors.TransientError, "{what}: {exc}", (http.client.HTTPException, OSError)),
    ),
    _facts,
)
_guard = ERRORS.guard


def _error_of(status: int, body: bytes) -> S3Answer:
    """The code and message of an error answer (its XML body, or the status alone)."""
    code, message = str(status), http.client.responses.get(status, "error")
    if body:
        text = body.decode("utf-8", "replace")
        code = _between(text, "Code") or code
        message = _between(text, "Message") or message
    return S3Answer(status, code, message)


def _payload_sha256(body: Payload) -> str:
    """The body's SHA-256 (hex): the one its writer gave, or computed once and kept (the
    signature and the checksum header share it, and a retry does not hash again)."""
    if body.sha256 is None:
        body.sha256 = hashlib.sha256(body._view).hexdigest()
    return body.sha256


def _checksum_header(body: Payload, signed: bool) -> dict[str, str]:
    """The end-to-end checksum S3 verifies before storing: the SHA-256 when it is at hand
    (known, or needed anyway to sign the payload on http), else a CRC32, cheaper to compute."""
    if body.sha256 is not None or signed:
        digest = bytes.fromhex(_payload_sha256(body))
        return {"x-amz-checksum-sha256": base64.b64encode(digest).decode()}
    crc = zlib.crc32(body._view).to_bytes(4, "big")
    return {"x-amz-checksum-crc32": base64.b64encode(crc).decode()}


def _between(text: str, tag: str) -> str | None:
    start = text.find(f"<{tag}>")
    end = text.find(f"</{tag}>", start)
    return text[start + len(tag) + 2 : end] if start >= 0 and end >= 0 else None


class _Stream(RawStream):
    """The body of a GET on a connection of its own, failing when it ends early."""

    def __init__(self, connection: http.client.HTTPConnection, answer: Any, what: str) -> None:
        self._connection = connection
        self._answer = answer
        self._what = what

    def read(self, n: int) -> bytes:
        with _guard(self._what):
            data: bytes = self._answer.read(n)
            if not data and self._answer.length:
                raise http.client.IncompleteRead(b"", self._answer.length)
            return data

    def close(self) -> None:
        self._connection.close()


class S3HttpStore(ObjectStore):
    """An S3 bucket reached with plain keys through http.client; the rest through boto3."""

    provider = Provider.S3
    ERRORS = ERRORS
    min_part_size = 5 * 1024 * 1024
    max_parts = 10_000
    delete_batch = 1000

    def __init__(
        self, location: Location, config: StoreConfig, keys: Keys, endpoint: Endpoint
    ) -> None:
        super().__init__(location, config)
        check_s3_encryption(config)
        self.bucket = location.bucket
        self._keys = keys
        self._endpoint = endpoint
        self._timeouts = Timeouts.of(config)
        self._connections = ThreadConnections(self._connect)
        self._boto: S3Store | None = None
        self._boto_lock = threading.Lock()

    def close(self) -> None:
        self._connections.close()
        if self._boto is not None:
            self._boto.close()
        super().close()

    # ---- transport ------------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        endpoint = self._endpoint
        # boto3's AWS_CA_BUNDLE, or the system's authorities
        cafile = os.environ.get("AWS_CA_BUNDLE") or None
        return connect(endpoint.scheme, endpoint.host, self._timeouts, cafile, "AWS_CA_BUNDLE")

    def _answer(
        self,
        connection: http.client.HTTPConnection,
        request: tuple[str, str, dict[str, str]],
        headers: dict[str, str] | None,
        body: Payload | None,
    ) -> tuple[Any, bytes]:
        """One whole exchange: the answer and its body read."""
        answer = self._send(connection, request, dict(headers or {}), body)
        return answer, answer.read()

    def _send(
        self,
        connection: http.client.HTTPConnection,
        request: tuple[str, str, dict[str, str]],
        headers: dict[str, str],
        body: Payload | None,
    ) -> Any:
        method, path, query = request
        if body is not None:
            body.seek(0)
            headers["content-length"] = str(len(body))
        payload_hash = EMPTY_SHA256
        if body is not None:
            payload_hash = _payload_sha256(body) if self._endpoint.scheme == "http" else UNSIGNED
        signed = sign(self._keys, self._endpoint, request, headers, payload_hash)
        target = path + ("?" + query_string(query) if query else "")
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in signed.items():
            connection.putheader(name, value)
        connection.endheaders()
        if body is not None:
            for view in body.views(256 * 1024):
                connection.send(view)
        return connection.getresponse()

    def _request(
        self,
        method: str,
        key: str | None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Payload | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request on the kept-alive connection: status, headers, body; errors raised."""
        for moves in range(MAX_MOVES + 1):
            endpoint = self._endpoint
            path = endpoint.path(key) if key is not None else endpoint.bucket_path()
            request = (method, path, query or {})
            connection, (answer, data) = self._connections.exchange(
                lambda c, request=request: self._answer(c, request, headers, body)  # type: ignore[misc]
            )
            if answer.will_close:
                connection.close()
            if answer.status < 300:  # noqa: PLR2004 - HTTP: every 3xx, 4xx and 5xx is an error here
                return answer.status, answer.headers, data
            if moves == MAX_MOVES or not self._follow(answer, endpoint):
                raise _error_of(answer.status, data if method != "HEAD" else b"")
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _follow(self, answer: Any, asked: Endpoint) -> bool:
        """Move to the region the bucket answered from (once); False when it did not move."""
        if asked is not self._endpoint:
            return True  # another thread moved it meanwhile: ask again there
        target = moved(asked, self.bucket, answer.headers.get("x-amz-bucket-region"))
        if target is None:
            return False
        self._endpoint = target
        self._connections.close_mine()
        return True

    # ---- the primitives archive_command uses ----------------------------------------------

    def _check(self) -> None:
        with self._guard(f"bucket {self.bucket}"):
            try:
                self._request("HEAD", None)
            except S3Answer as exc:
                if exc.status == 404:  # noqa: PLR2004 - HTTP Not Found
                    raise errors.ContainerNotFound(f"bucket {self.bucket} does not exist") from None
                raise

    def _put(self, key: str, body: Payload, options: PutOptions) -> None:
        full = self.key(key)
        headers = _checksum_header(body, signed=self._endpoint.scheme == "http")
        headers.update(self._put_headers(options))
        if options.if_absent:
            headers["if-none-match"] = "*"
        with self._guard(f"put {full}"):
            self._request("PUT", full, headers=headers, body=body)

    def _put_headers(self, options: PutOptions) -> dict[str, str]:
        headers = {}
        if options.tags:
            headers["x-amz-tagging"] = urlencode(options.tags, quote_via=quote)
        if options.storage_class:
            headers["x-amz-storage-class"] = options.storage_class
        for name, value in options.metadata:
            headers[f"x-amz-meta-{name}"] = value
        if self.config.sse:
            headers["x-amz-server-side-encryption"] = self.config.sse
        if self.config.sse_kms_key_id:
            headers["x-amz-server-side-encryption-aws-kms-key-id"] = self.config.sse_kms_key_id
        return headers

    def _head(self, key: str) -> ObjectInfo:
        full = self.key(key)
        with self._guard(f"head {full}"):
            _, headers, _ = self._request("HEAD", full)
        metadata = sorted(
            (name.lower()[len("x-amz-meta-") :], value)
            for name, value in headers.items()
            if name.lower().startswith("x-amz-meta-")
        )
        modified = headers.get("last-modified")
        return ObjectInfo(
            key=key,
            size=int(headers.get("content-length", 0)),
            modified=_http_date(modified) if modified else None,
            etag=headers.get("etag"),
            storage_class=headers.get("x-amz-storage-class", "STANDARD"),
            metadata=tuple(metadata),
        )

    def _open_stream(self, key: str, start: int, end: int | None) -> RawStream:
        full = self.key(key)
        headers = {}
        if start or end is not None:
            headers["range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
        # A body read piece by piece holds its connection: it gets one of its own.
        with self._guard(f"get {full}"):
            for moves in range(MAX_MOVES + 1):
                endpoint = self._endpoint
                connection = self._connect()
                request: tuple[str, str, dict[str, str]] = ("GET", endpoint.path(full), {})
                answer = self._send(connection, request, headers, None)
                if answer.status < 300:  # noqa: PLR2004 - 2xx: the body follows
                    return _Stream(connection, answer, f"get {full}")
                data = answer.read()
                connection.close()
                if answer.status == 416:  # noqa: PLR2004 - InvalidRange: past the end
                    return _Stream(connection, _Empty(), full)
                if moves == MAX_MOVES or not self._follow(answer, endpoint):
                    raise _error_of(answer.status, data)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _list(
        self, prefix: str, delimiter: str | None, page_size: int | None
    ) -> Iterator[ObjectInfo | CommonPrefix]:
        full_prefix = self.full_prefix(prefix)
        query = {"list-type": "2", "prefix": full_prefix, "encoding-type": "url"}
        if delimiter:
            query["delimiter"] = delimiter
        if page_size:
            query["max-keys"] = str(page_size)
        while True:
            with self._guard(f"list {full_prefix or '/'}"):
                _, _, data = self._request("GET", None, query=query)
            token = yield from self._page(data)
            if token is None:
                return
            query["continuation-token"] = token

    def _page(self, data: bytes) -> Generator[ObjectInfo | CommonPrefix, None, str | None]:
        """The entries of one ListObjectsV2 page; returns the next page's token."""
        from xml.etree import ElementTree

        root = ElementTree.fromstring(data)  # noqa: S314 - the store's answer to our request
        for element in root:
            tag = element.tag.rsplit("}", 1)[-1]
            fields = {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in element}
            if tag == "Contents":
                yield ObjectInfo(
                    key=self.relative(unquote(fields["Key"])),
                    size=int(fields.get("Size", 0)),
                    modified=datetime.fromisoformat(fields["LastModified"])
                    if fields.get("LastModified")
                    else None,
                    etag=fields.get("ETag"),
                    storage_class=fields.get("StorageClass"),
                )
            elif tag == "CommonPrefixes":
                yield CommonPrefix(self.relative(unquote(fields["Prefix"])))
        namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        truncated = root.findtext(f"{namespace}IsTruncated") == "true"
        return root.findtext(f"{namespace}NextContinuationToken") if truncated else None

    # ---- everything else: boto3 ---------------------------------------------------------

    def _full(self) -> S3Store:
        with self._boto_lock:
            if self._boto is None:
                from core.storage.s3 import S3Store

                self._boto = S3Store(self.location, self.config)
            return self._boto

    def _mpu_begin(self, key: str, options: PutOptions) -> Any:
        return self._full()._mpu_begin(key, options)

    def _mpu_part(self, handle: Any, number: int, offset: int, body: Payload) -> Any:
        return self._full()._mpu_part(handle, number, offset, body)

    def _mpu_complete(self, handle: Any, parts: list[Any]) -> None:
        self._full()._mpu_complete(handle, parts)

    def _mpu_abort(self, handle: Any) -> None:
        self._full()._mpu_abort(handle)

    def _delete(self, keys: list[str]) -> None:
        self._full()._delete(keys)

    def _get_tags(self, key: str) -> dict[str, str]:
        return self._full()._get_tags(key)

    def _set_tags(self, key: str, tags: dict[str, str]) -> None:
        self._full()._set_tags(key, tags)

    def _set_storage_class(self, key: str, storage_class: str) -> None:
        self._full()._set_storage_class(key, storage_class)

    def _archive(self, key: str) -> None:
        self._full()._archive(key)

    def _rehydrate(self, key: str) -> bool:
        return self._full()._rehydrate(key)

    def _list_pending(self, prefix: str) -> list[PendingUpload]:
        return self._full()._list_pending(prefix)

    def _abort_pending(self, upload: PendingUpload) -> None:
        self._full()._abort_pending(upload)


def _http_date(text: str) -> datetime | None:
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None


class _Empty:
    length = 0

    def read(self, n: int) -> bytes:
        return b""
