"""A WebDAV collection as an object store, through http.client (dav:// and davs:// URLs).

Objects are PUT, GET (ranged) and DELETEd; listings are PROPFIND Depth: 1 walked
recursively; missing collections are made with MKCOL. A conditional create (if_absent) is
a PUT to a hidden temporary name and a MOVE with `Overwrite: F`, which the server refuses
with 412 when the target exists: nginx's dav module ignores `If-None-Match: *` on PUT and
overwrites (checked), so that header is not relied on. A streaming write is one chunked PUT
to a temporary name, its parts sent in order as they come, then moved into place; a marker
object names its target so that an upload a crash left behind is listed and aborted.
Tags, storage class and metadata live in a sidecar JSON object (no PROPPATCH on nginx).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import uuid
from base64 import b64encode
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from core import errors
from core.storage.backend import RawStream
from core.storage.bandwidth import Payload
from core.storage.clients import Timeouts, env_secret
from core.storage.config import StoreConfig
from core.storage.http_connections import ThreadConnections, connect
from core.storage.objects import CommonPrefix, ObjectInfo, PendingUpload, PutOptions
from core.storage.proxies import proxy_for
from core.storage.store import ObjectStore
from core.storage.webdav_errors import ERRORS, DavAnswer, refused_upload
from core.storage.webdav_upload import Upload, keepalive_seconds
from core.storage.webdav_xml import Entry, parse_multistatus
from core.urls import Location, Provider

PARTIAL = ".pgvault-partial"
META = ".pgvault-meta"
HIDDEN = ".pgvault-"
_MOVED = (301, 302, 307, 308)
_PROPFIND = (
    b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:getetag/>"
    b"</D:prop></D:propfind>"
)


_guard = ERRORS.guard


CA_VARIABLES = "REQUESTS_CA_BUNDLE or SSL_CERT_FILE"


def ca_file() -> str | None:
    """A CA bundle from the environment (requests' REQUESTS_CA_BUNDLE, OpenSSL's
    SSL_CERT_FILE), else None: the system's authorities."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or None


class _Stream(RawStream):
    """The body of a GET on a connection of its own, failing when it ends early."""

    def __init__(self, connection: http.client.HTTPConnection | None, answer: Any, what: str):
        self._connection = connection
        self._answer = answer
        self._what = what

    def read(self, n: int) -> bytes:
        if self._answer is None:
            return b""
        with _guard(self._what):
            data: bytes = self._answer.read(n)
            if not data and self._answer.length:
                raise http.client.IncompleteRead(b"", self._answer.length)
            return data

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


class WebDavStore(ObjectStore):
    """A collection on a WebDAV server (nginx dav + dav-ext, WsgiDAV) over http or https."""

    provider = Provider.WEBDAV
    min_part_size = 1
    max_parts = 1_000_000
    delete_batch = 100

    def __init__(self, location: Location, config: StoreConfig) -> None:
        super().__init__(location, config)
        endpoint = urlsplit(location.endpoint or "")
        self._tls = endpoint.scheme == "https"
        self._host = endpoint.netloc
        self._origin = f"{endpoint.scheme}://{endpoint.netloc}"
        self._timeouts = Timeouts.of(config)
        self._keepalive = keepalive_seconds()
        self._proxy = proxy_for(endpoint.scheme, endpoint.netloc)
        # Plain http through a proxy names the whole URL in each request line.
        self._target = self._origin if self._proxy is not None and not self._tls else ""
        self._connections = ThreadConnections(self._connect)
        #: streaming uploads not finished: closing the store ends them (and their keepalive)
        self._uploads: dict[str, Upload] = {}
        self._made: set[str] = set()
        self._collection_seen = False
        creds = location.credentials
        user = creds.dav_user or os.environ.get("PGVAULT_DAV_USER")
        password = creds.dav_password or env_secret("PGVAULT_DAV_PASSWORD")
        self._auth = None
        if user or password:
            token = b64encode(f"{user or ''}:{password or ''}".encode()).decode()
            self._auth = f"Basic {token}"

    def close(self) -> None:
        for upload in list(self._uploads.values()):
            upload.close()
        self._uploads.clear()
        self._connections.close()
        super().close()

    # ---- transport ------------------------------------------------------------------------

    def _path(self, full: str, collection: bool = False) -> str:
        """The request path of a key inside the bucket (a collection's ends with /)."""
        parts = [self.location.bucket, *(p for p in full.split("/") if p)]
        return "/" + "/".join(quote(p, safe="") for p in parts) + ("/" if collection else "")

    def _connect(self) -> http.client.HTTPConnection:
        scheme = "https" if self._tls else "http"
        return connect(scheme, self._host, self._timeouts, ca_file(), CA_VARIABLES, self._proxy)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Host": self._host}
        if self._auth:
            headers["Authorization"] = self._auth
        if self._target and self._proxy is not None:  # the tunnel's CONNECT carries https's
            headers.update(self._proxy.headers())
        headers.update(extra or {})
        return headers

    def _answer(
        self,
        connection: http.client.HTTPConnection,
        request: tuple[str, str],
        headers: dict[str, str],
        body: Payload | bytes | None,
    ) -> tuple[Any, bytes]:
        """One whole exchange: the answer and its body read."""
        answer = self._send(connection, request, dict(headers), body)
        return answer, answer.read()

    def _send(
        self,
        connection: http.client.HTTPConnection,
        request: tuple[str, str],
        headers: dict[str, str],
        body: Payload | bytes | None,
    ) -> Any:
        method, path = request
        connection.putrequest(
            method, self._target + path, skip_host=True, skip_accept_encoding=True
        )
        if body is not None:
            headers["Content-Length"] = str(len(body))
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        if isinstance(body, Payload):
            body.seek(0)
            for view in body.views(256 * 1024):
                connection.send(view)
        elif body:
            connection.send(body)
        return connection.getresponse()

    def _request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: Payload | bytes | None = None,
        ok: tuple[int, ...] = (),
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request on the kept-alive connection; an error status raises DavAnswer
        unless it is in `ok`."""
        all_headers = self._headers(headers)
        connection, (answer, data) = self._connections.exchange(
            lambda c: self._answer(c, (method, path), all_headers, body)
        )
        if answer.will_close:
            connection.close()
        if answer.status >= 300 and answer.status not in ok:  # noqa: PLR2004 - HTTP
            raise DavAnswer(answer.status, answer.reason, anonymous=self._auth is None)
        return answer.status, answer.headers, data

    # ---- collections ----------------------------------------------------------------------

    def _make_parents(self, full: str) -> None:
        """MKCOL every missing collection above a key (once per store: servers such as nginx
        without create_full_put_path and WsgiDAV need them before a PUT or MOVE)."""
        parent = full.rsplit("/", 1)[0] if "/" in full else ""
        if not parent or parent in self._made:
            return
        status, _, _ = self._request("MKCOL", self._path(parent, True), ok=(405, 409))
        if status == 409:  # noqa: PLR2004 - 409 Conflict: its own parent is missing
            if "/" not in parent:  # ... the collection itself: never made, named instead
                self._require_collection()
            self._make_parents(parent)
            self._request("MKCOL", self._path(parent, True), ok=(405,))
        self._made.add(parent)

    def _propfind(self, path: str) -> list[Entry]:
        """The members of a collection (Depth: 1), itself left out; [] when it is missing."""
        status, _, data = self._request(
            "PROPFIND",
            path,
            {"Depth": "1", "Content-Type": 'application/xml; charset="utf-8"'},
            _PROPFIND,
            ok=(404,),
        )
        if status == 404:  # noqa: PLR2004
            # A prefix not written yet is empty; a missing collection is no empty archive
            # (restore_command would take "not found" for the end of the WAL).
            self._require_collection()
            return []
        itself = unquote(path).rstrip("/")
        return [e for e in parse_multistatus(data) if e.path.rstrip("/") != itself]

    # ---- primitives -----------------------------------------------------------------------

    def _check(self) -> None:
        self._collection_seen = False
        self._require_collection()

    def _require_collection(self) -> None:
        """ContainerNotFound unless the collection (the URL's first path segment) exists:
        asked once per store, when -t checks or a request meets a missing name."""
        if self._collection_seen:
            return
        what = f"collection /{self.location.bucket}/ on {self._origin}"
        with _guard(what):
            status, _, _ = self._request(
                "PROPFIND", self._path("", True), {"Depth": "0"}, _PROPFIND, ok=(404, 409)
            )
        if status in (404, 409):
            raise errors.ContainerNotFound(
                f"{what} does not exist: create it on the server (pgvault makes the "
                "collections below it, never the first one)"
            )
        self._collection_seen = True

    def _put(self, key: str, body: Payload, options: PutOptions) -> None:
        full = self.key(key)
        with _guard(f"put {full}"):
            if options.if_absent:
                temp = self.key(f"{PARTIAL}/{uuid.uuid4().hex}.data")
                self._make_parents(temp)
                self._request("PUT", self._path(temp), body=body)
                try:
                    self._move(temp, full, overwrite=False)
                except BaseException:  # refused or failed: a retry PUTs a new temporary
                    with contextlib.suppress(Exception):  # the first error is the one to tell
                        self._request("DELETE", self._path(temp), ok=(404,))
                    raise
            else:
                self._make_parents(full)
                self._request("PUT", self._path(full), body=body)
            self._write_sidecar(key, options)

    def _move(self, source: str, target: str, overwrite: bool) -> None:
        """MOVE source onto target; Overwrite: F makes the server refuse an existing target
        (412), which is what makes a conditional create atomic on the server."""
        self._make_parents(target)
        headers = {
            "Destination": self._origin + self._path(target),
            "Overwrite": "T" if overwrite else "F",
        }
        self._request("MOVE", self._path(source), headers)

    def _sidecar(self, key: str) -> str:
        return self.key(f"{META}/{key}.json")

    def _write_sidecar(self, key: str, options: PutOptions) -> None:
        """Tags, class and metadata of an object; a plain write drops stale ones."""
        extras = {
            "tags": options.tag_dict(),
            "storage_class": options.storage_class,
            "metadata": options.metadata_dict(),
        }
        sidecar = self._sidecar(key)
        if not any(extras.values()):
            self._request("DELETE", self._path(sidecar), ok=(404,))
            return
        self._make_parents(sidecar)
        self._request("PUT", self._path(sidecar), body=json.dumps(extras).encode())

    def _read_sidecar(self, key: str) -> dict[str, Any]:
        status, _, data = self._request("GET", self._path(self._sidecar(key)), ok=(404,))
        if status == 404:  # noqa: PLR2004
            return {}
        loaded: dict[str, Any] = json.loads(data)
        return loaded

    def _mpu_begin(self, key: str, options: PutOptions) -> Upload:
        full = self.key(key)
        upload_id = uuid.uuid4().hex
        data = self.key(f"{PARTIAL}/{upload_id}.data")
        with _guard(f"start upload {full}"):
            marker = self.key(f"{PARTIAL}/{upload_id}.upload")
            self._make_parents(marker)
            self._request("PUT", self._path(marker), body=json.dumps({"key": key}).encode())
            connection = self._connect()
            connection.putrequest(
                "PUT", self._target + self._path(data), skip_host=True, skip_accept_encoding=True
            )
            for name, value in self._headers({"Transfer-Encoding": "chunked"}).items():
                connection.putheader(name, value)
            connection.endheaders()
        upload = Upload(key=key, upload_id=upload_id, options=options, connection=connection)
        upload.keep_alive(self._keepalive)  # a pause of any length keeps the request
        self._uploads[upload_id] = upload
        return upload

    def _mpu_part(self, handle: Upload, number: int, offset: int, body: Payload) -> int:
        what = f"upload part {number} of {self.key(handle.key)}"
        with handle.ready:
            handle.ready.wait_for(lambda: handle.next_part == number or handle.broken)
            if handle.broken:
                # One request carries every part: what an earlier part lost cannot be sent again.
                raise errors.StorageError(f"{what}: the upload broke off at an earlier part")
        # Outside the lock: a pause blocks at the gate between two chunks while the
        # upload's keepalive holds the request open.
        try:
            body.seek(0)
            for view in body.views(256 * 1024):
                handle.send_chunk(view)
        except OSError as exc:
            handle.fail()
            raise handle.lost(what, exc) from None
        except BaseException:
            handle.fail()
            raise
        handle.part_sent()
        return number

    def _mpu_complete(self, handle: Upload, parts: list[Any]) -> None:
        full = self.key(handle.key)
        data = self.key(f"{PARTIAL}/{handle.upload_id}.data")
        with _guard(f"complete {full}"):
            if not handle.finished:
                if handle.broken:
                    raise errors.StorageError(f"complete {full}: the upload broke off")
                try:
                    handle.send_end()
                except OSError as exc:
                    raise handle.lost(f"complete {full}", exc) from None
                answer = handle.connection.getresponse()
                answer.read()
                handle.connection.close()
                if answer.status >= 300:  # noqa: PLR2004 - HTTP
                    handle.broken = True  # its body went with the request: never sent again
                    raise refused_upload(
                        DavAnswer(answer.status, answer.reason), f"complete {full}"
                    )
                handle.finished = True
                self._uploads.pop(handle.upload_id, None)
            self._move(data, full, overwrite=not handle.options.if_absent)
            self._write_sidecar(handle.key, handle.options)
            self._request(
                "DELETE", self._path(self.key(f"{PARTIAL}/{handle.upload_id}.upload")), ok=(404,)
            )

    def _mpu_abort(self, handle: Upload) -> None:
        handle.fail()
        handle.close()  # the server drops a PUT whose body never ended
        self._uploads.pop(handle.upload_id, None)
        self._abort_pending(PendingUpload(key=handle.key, upload_id=handle.upload_id))

    def _open_stream(self, key: str, start: int, end: int | None) -> RawStream:
        full = self.key(key)
        if end is not None and end <= start:
            return _Stream(None, None, full)
        what = f"get {full}"
        with _guard(what):
            headers = self._headers()
            if start or end is not None:
                headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
            connection = self._connect()
            try:
                answer = self._send(connection, ("GET", self._path(full)), headers, None)
                if answer.status == 416:  # noqa: PLR2004 - a range past the end: no bytes
                    connection.close()
                    return _Stream(None, None, what)
                if answer.status in _MOVED:  # a collection (nginx redirects to its slash)
                    raise DavAnswer(404, "Not Found")
                if answer.status >= 300:  # noqa: PLR2004 - HTTP
                    raise DavAnswer(answer.status, answer.reason, self._auth is None)
                if start and answer.status != 206:  # noqa: PLR2004
                    raise errors.StorageError(f"{what}: the server ignored the Range header")
            except BaseException:
                connection.close()
                raise
        return _Stream(connection, answer, what)

    def _head(self, key: str) -> ObjectInfo:
        full = self.key(key)
        with _guard(f"head {full}"):
            entry = self._entry(full)
            extras = self._read_sidecar(key)
        return ObjectInfo(
            key=key,
            size=entry.size,
            modified=entry.modified,
            etag=entry.etag,
            storage_class=extras.get("storage_class"),
            metadata=tuple(sorted((extras.get("metadata") or {}).items())),
        )

    def _entry(self, full: str) -> Entry:
        """An object's properties (PROPFIND Depth: 0, which tells a collection apart: HEAD
        on one answers 200 on WsgiDAV and 301 on nginx); a collection is not found."""
        status, _, data = self._request(
            "PROPFIND", self._path(full), {"Depth": "0"}, _PROPFIND, ok=_MOVED
        )
        entries = [] if status in _MOVED else parse_multistatus(data)
        if not entries or entries[0].collection:
            raise DavAnswer(404, "Not Found")
        return entries[0]

    def _list(
        self, prefix: str, delimiter: str | None, page_size: int | None
    ) -> Iterator[ObjectInfo | CommonPrefix]:
        full_prefix = self.full_prefix(prefix)
        directory, _, start = full_prefix.rpartition("/")
        with _guard(f"list {full_prefix or '/'}"):
            yield from self._walk(directory, start, delimiter)

    def _walk(
        self, directory: str, start: str, delimiter: str | None
    ) -> Iterator[ObjectInfo | CommonPrefix]:
        """Entries of a collection whose names begin with `start`, in key order (a member
        collection sorts as its name plus '/', as its keys do)."""
        base = self._path(directory, True)
        members = []
        for entry in self._propfind(base):
            name = entry.name
            if name.startswith(HIDDEN) or not name.startswith(start):
                continue
            members.append((name + ("/" if entry.collection else ""), entry))
        for _, entry in sorted(members, key=lambda m: m[0]):
            full = f"{directory}/{entry.name}" if directory else entry.name
            if not entry.collection:
                yield ObjectInfo(
                    key=self.relative(full),
                    size=entry.size,
                    modified=entry.modified,
                    etag=entry.etag,
                )
            elif delimiter == "/":
                if self._holds_objects(full):
                    yield CommonPrefix(self.relative(full) + "/")
            else:
                yield from self._walk(full, "", delimiter)

    def _holds_objects(self, directory: str) -> bool:
        """Whether a collection holds an object at any depth. Deletes leave collections
        behind (removing one would race a writer putting into it), and a prefix with no
        object is no prefix on any other store."""
        entries = [
            e for e in self._propfind(self._path(directory, True)) if not e.name.startswith(HIDDEN)
        ]
        if any(not e.collection for e in entries):
            return True
        return any(self._holds_objects(f"{directory}/{e.name}") for e in entries)

    def _delete(self, keys: list[str]) -> None:
        for key in keys:
            with _guard(f"delete {self.key(key)}"):
                self._request("DELETE", self._path(self.key(key)), ok=(404,))
                self._request("DELETE", self._path(self._sidecar(key)), ok=(404,))

    def _get_tags(self, key: str) -> dict[str, str]:
        full = self.key(key)
        with _guard(f"get tags of {full}"):
            self._entry(full)
            tags: dict[str, str] = self._read_sidecar(key).get("tags") or {}
        return tags

    def _set_tags(self, key: str, tags: dict[str, str]) -> None:
        self._update_sidecar(key, "tags", tags, f"set tags of {self.key(key)}")

    def _set_storage_class(self, key: str, storage_class: str) -> None:
        self._update_sidecar(key, "storage_class", storage_class, f"set class of {self.key(key)}")

    def _update_sidecar(self, key: str, field_name: str, value: Any, what: str) -> None:
        with _guard(what):
            self._entry(self.key(key))
            extras = self._read_sidecar(key)
            extras[field_name] = value
            sidecar = self._sidecar(key)
            self._make_parents(sidecar)
            self._request("PUT", self._path(sidecar), body=json.dumps(extras).encode())

    def _list_pending(self, prefix: str) -> list[PendingUpload]:
        partial = self.key(PARTIAL)
        uploads = []
        with _guard(f"list {partial}"):
            for entry in self._propfind(self._path(partial, True)):
                if not entry.name.endswith(".upload"):
                    continue
                status, _, data = self._request(
                    "GET", self._path(f"{partial}/{entry.name}"), ok=(404,)
                )
                if status == 404:  # noqa: PLR2004 - completed meanwhile
                    continue
                key = str(json.loads(data).get("key", ""))
                if key.startswith(prefix):
                    upload_id = entry.name.removesuffix(".upload")
                    uploads.append(
                        PendingUpload(key=key, upload_id=upload_id, started=entry.modified)
                    )
        return uploads

    def _abort_pending(self, upload: PendingUpload) -> None:
        with _guard(f"abort {self.key(upload.key)}"):
            for suffix in (".data", ".upload"):
                name = self.key(f"{PARTIAL}/{upload.upload_id}{suffix}")
                self._request("DELETE", self._path(name), ok=(404,))
