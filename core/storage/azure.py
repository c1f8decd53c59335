"""Azure Blob Storage through azure-storage-blob: block uploads, index tags, access tiers."""

from __future__ import annotations

import importlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    IncompleteReadError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import (
    BlobBlock,
    BlobPrefix,
    BlobServiceClient,
    ContainerClient,
    StandardBlobTier,
)

from core import errors
from core.storage.backend import RawStream
from core.storage.bandwidth import Payload
from core.storage.clients import Timeouts, env_secret
from core.storage.config import StoreConfig
from core.storage.objects import (
    CommonPrefix,
    ObjectInfo,
    PendingUpload,
    PutOptions,
    StoredChunk,
)
from core.storage.store import ObjectStore
from core.storage.translate import SERVER_ERRORS, ErrorTable, Facts, Rule
from core.urls import Location, Provider

AZURE_CREDENTIALS = ("azure-cli", "managed-identity", "default")


def _facts(exc: BaseException) -> Facts:
    """An Azure error's code and HTTP status, and the ways its messages show them."""
    code = str(getattr(exc, "error_code", "") or "")
    status = getattr(exc, "status_code", None)
    return {
        "code": code,
        "status": status,
        "code_or_exc": code or exc,
        "code_or_status": code or status,
        "http": f"HTTP {status} {code}".strip(),
    }


_EXISTS = "{what}: object already exists"


def _connection_broken(exc: BaseException) -> bool:
    """An HttpResponseError without an answer, raised for a body cut off mid-read."""
    if getattr(exc, "status_code", None) is not None:
        return False
    causes = [getattr(exc, "inner_exception", None), exc.__cause__, exc.__context__]
    causes += [item for arg in exc.args for item in (arg if isinstance(arg, tuple) else (arg,))]
    return any(isinstance(cause, OSError) for cause in causes)


ERRORS = ErrorTable(
    (
        Rule(
            errors.ContainerNotFound,
            "{what}: container{named} does not exist",
            (ResourceNotFoundError,),
            {"ContainerNotFound"},
        ),
        Rule(errors.ObjectNotFound, "{what}: not found", (ResourceNotFoundError,)),
        Rule(errors.ObjectExists, _EXISTS, (ResourceModifiedError,)),
        Rule(errors.ObjectExists, _EXISTS, statuses={412}),
        Rule(
            errors.ObjectExists,
            _EXISTS,
            (ResourceExistsError,),
            {"BlobAlreadyExists", "ConditionNotMet"},
        ),
        Rule(
            errors.ObjectArchived,
            "{what}: the blob is in the Archive tier (rehydrate it first)",
            (ResourceExistsError,),
            {"BlobArchived", "BlobBeingRehydrated"},
        ),
        Rule(errors.StorageError, "{what}: {code_or_exc}", (ResourceExistsError,)),
        Rule(
            errors.AccessDenied,
            "{what}: access denied ({code_or_status})",
            (ClientAuthenticationError,),
        ),
        Rule(errors.AccessDenied, "{what}: access denied ({code_or_status})", statuses={401, 403}),
        Rule(
            errors.EndpointUnreachable,
            "{what}: cannot reach the Azure endpoint",
            (ServiceRequestError,),
        ),
        Rule(
            errors.TransientError,
            "{what}: connection dropped",
            (ServiceResponseError, IncompleteReadError, ConnectionError),
        ),
        Rule(
            errors.TransientError,
            "{what}: {http}",
            (HttpResponseError,),
            statuses={408, 429, *SERVER_ERRORS},
        ),
        Rule(
            errors.TransientError,
            "{what}: connection dropped while reading the answer",
            (HttpResponseError,),
            when=_connection_broken,
        ),
        Rule(errors.StorageError, "{what}: {http}", (HttpResponseError,)),
        Rule(errors.StorageError, "{what}: {exc}", (AzureError,)),
    ),
    _facts,
)
_guard = ERRORS.guard


def _tier(name: str) -> StandardBlobTier:
    """Azure access tiers by name, case-insensitive: Hot, Cool, Cold, Archive."""
    for tier in StandardBlobTier:
        if tier.value.lower() == name.lower():
            return tier
    choices = ", ".join(t.value for t in StandardBlobTier)
    raise errors.InputError(f"unknown Azure access tier {name!r} (one of {choices})")


@dataclass
class _Upload:
    key: str
    options: PutOptions
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def block_id(self, number: int) -> str:
        return f"{self.tag}-{number:06d}"


class _AzureStream(RawStream):
    """The downloader's chunks (its first, up to 32 MiB, fetched as it opened) as a stream."""

    def __init__(self, downloader: Any, what: str) -> None:
        self._chunks = downloader.chunks() if downloader is not None else iter(())
        self._chunk = b""
        self._offset = 0
        self._what = what

    def buffered(self) -> int:
        self._next_chunk()
        return len(self._chunk) - self._offset

    def _next_chunk(self) -> None:
        with _guard(self._what):
            while self._offset == len(self._chunk):
                try:
                    self._chunk, self._offset = next(self._chunks), 0
                except StopIteration:
                    self._chunk, self._offset = b"", 0
                    return

    def read(self, n: int) -> bytes:
        self._next_chunk()
        if self._offset == 0 and n >= len(self._chunk):
            data, self._chunk = self._chunk, b""  # handed on whole, not copied
            return data
        # Slices of a view: slicing the rest off a bytes chunk copied it at every read.
        end = min(len(self._chunk), self._offset + n)
        data = bytes(memoryview(self._chunk)[self._offset : end])
        self._offset = end
        return data

    def close(self) -> None:
        self._chunks = iter(())


def _service_client(location: Location, config: StoreConfig) -> BlobServiceClient:
    timeouts = Timeouts.of(config)
    kwargs: dict[str, Any] = {
        "retry_total": 0,
        "connection_timeout": timeouts.connect,
        "read_timeout": timeouts.read,
        "max_block_size": config.azure_max_block_size or 4 * 1024 * 1024,
        "max_single_put_size": config.azure_max_single_put_size or 64 * 1024 * 1024,
    }
    account = location.account or os.environ.get("AZURE_STORAGE_ACCOUNT")
    endpoint = location.endpoint or (
        f"https://{account}.blob.core.windows.net" if account else None
    )
    creds = location.credentials
    if config.azure_credential:
        if config.azure_credential not in AZURE_CREDENTIALS:
            raise errors.InputError(
                f"--azure-credential must be one of {', '.join(AZURE_CREDENTIALS)}"
            )
        if endpoint is None:
            raise errors.InputError("the Azure storage account is unknown: use an account URL")
        return _token_client(endpoint, account, config.azure_credential, kwargs)
    if creds.azure_account_key or creds.azure_sas_token:
        if endpoint is None or account is None:
            raise errors.InputError("azure:// URLs with a key need AZURE_ACCOUNT_NAME")
        credential: Any = creds.azure_sas_token or {
            "account_name": str(account),
            "account_key": creds.azure_account_key,
        }
        return BlobServiceClient(endpoint, credential=credential, **kwargs)
    connection_string = env_secret("AZURE_STORAGE_CONNECTION_STRING")
    if connection_string:
        try:
            return BlobServiceClient.from_connection_string(connection_string, **kwargs)
        except ValueError as exc:
            raise errors.InputError("AZURE_STORAGE_CONNECTION_STRING is malformed") from exc
    if endpoint is None:
        raise errors.InputError(
            "the Azure storage account is unknown: use https://ACCOUNT.blob.core.windows.net/..., "
            "AZURE_ACCOUNT_NAME in an azure:// URL, or AZURE_STORAGE_CONNECTION_STRING"
        )
    sas = env_secret("AZURE_STORAGE_SAS_TOKEN")
    if sas:
        return BlobServiceClient(endpoint, credential=sas, **kwargs)
    key = env_secret("AZURE_STORAGE_KEY")
    if key:
        return BlobServiceClient(
            endpoint, credential={"account_name": str(account), "account_key": key}, **kwargs
        )
    return _token_client(endpoint, account, None, kwargs)


def _token_client(
    endpoint: str, account: str | None, kind: str | None, kwargs: dict[str, Any]
) -> BlobServiceClient:
    """A client on azure-identity's credential; over http the SDK would refuse it with a
    bare ValueError (exit 4), so the missing credentials are named here, as exit 2."""
    if not endpoint.lower().startswith("https:"):
        given = f" (--azure-credential {kind})" if kind else ""
        raise errors.AccessDenied(
            f"no credentials for Azure account {account or '?'} over http{given}: a token "
            "credential needs https; give AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY "
            "or a SAS token"
        )
    return BlobServiceClient(endpoint, credential=identity_credential(kind), **kwargs)


def identity_credential(kind: str | None) -> Any:
    """azure-identity's credential for --azure-credential KIND (default: the default chain)."""
    try:
        # Loaded only when used: most stores authenticate with a key or a connection string.
        identity: Any = importlib.import_module("azure.identity")
    except ImportError:
        raise errors.InputError(
            "azure-identity is not installed, and --azure-credential or Azure disk snapshots "
            "need it (pip install azure-identity)"
        ) from None
    if kind == "azure-cli":
        return identity.AzureCliCredential()
    if kind == "managed-identity":
        return identity.ManagedIdentityCredential()
    return identity.DefaultAzureCredential()


class AzureStore(ObjectStore):
    """An Azure Blob Storage container."""

    provider = Provider.AZURE
    ERRORS = ERRORS
    archive_class = "Archive"
    archived_classes = frozenset({"Archive"})
    min_part_size = 64 * 1024
    max_parts = 50_000
    delete_batch = 256

    def __init__(self, location: Location, config: StoreConfig) -> None:
        super().__init__(location, config)
        self._service = _service_client(location, config)
        self._container: ContainerClient = self._service.get_container_client(location.bucket)

    def close(self) -> None:
        # The SDK's session and its sockets go now: its clients sit in reference cycles, so
        # a dropped one kept its sockets until a full garbage collection, which a process
        # with a large heap runs seldom; a console or agent opening stores again and again
        # for days gathered sockets until it ran out of descriptors.
        super().close()
        self._container.close()
        self._service.close()
        close_credential = getattr(self._service.credential, "close", None)
        if callable(close_credential):
            close_credential()  # azure-identity's own HTTP session

    def default_chunk_size(self) -> int:
        return self.config.azure_max_block_size or 16 * 1024 * 1024

    def _blob(self, full: str) -> Any:
        return self._container.get_blob_client(full)

    def _scope(self) -> dict[str, Any]:
        return (
            {"encryption_scope": self.config.encryption_scope}
            if (self.config.encryption_scope)
            else {}
        )

    def _check(self) -> None:
        with self._guard(f"container {self.location.bucket}"):
            if not self._container.exists():
                raise errors.ContainerNotFound(f"container {self.location.bucket} does not exist")

    def _put(self, key: str, body: Payload, options: PutOptions) -> None:
        full = self.key(key)
        args: dict[str, Any] = dict(self._scope())
        if options.tags:
            args["tags"] = options.tag_dict()
        if options.storage_class:
            args["standard_blob_tier"] = _tier(options.storage_class)
        if options.metadata:
            args["metadata"] = options.metadata_dict()
        with self._guard(f"put {full}"):
            self._blob(full).upload_blob(
                body, length=len(body), overwrite=not options.if_absent, max_concurrency=1, **args
            )

    def _mpu_begin(self, key: str, options: PutOptions) -> _Upload:
        full = self.key(key)
        if options.if_absent:
            with self._guard(f"head {full}"):
                if self._blob(full).exists():
                    raise errors.ObjectExists(f"{full}: object already exists")
        return _Upload(key=full, options=options)

    def _mpu_part(self, handle: _Upload, number: int, offset: int, body: Payload) -> str:
        block_id = handle.block_id(number)
        with self._guard(f"upload block {number} of {handle.key}"):
            self._blob(handle.key).stage_block(block_id, body, length=len(body), **self._scope())
        return block_id

    def _mpu_complete(self, handle: _Upload, parts: list[Any]) -> None:
        args: dict[str, Any] = dict(self._scope())
        if handle.options.tags:
            args["tags"] = handle.options.tag_dict()
        if handle.options.storage_class:
            args["standard_blob_tier"] = _tier(handle.options.storage_class)
        if handle.options.metadata:
            args["metadata"] = handle.options.metadata_dict()
        if handle.options.if_absent:
            # IfMissing sends If-None-Match: *; an `etag` argument would leak to the transport.
            args["match_condition"] = MatchConditions.IfMissing
        with self._guard(f"commit {handle.key}"):
            self._blob(handle.key).commit_block_list([BlobBlock(block_id=b) for b in parts], **args)

    def _mpu_abort(self, handle: _Upload) -> None:
        self._discard_uncommitted(handle.key)

    def _mpu_token(self, handle: _Upload) -> str:
        return handle.tag

    def _uncommitted(self, full: str) -> dict[str, int]:
        """The blob's uncommitted blocks: size by block ID."""
        with self._guard(f"list the uncommitted blocks of {full}"):
            try:
                _, blocks = self._blob(full).get_block_list("uncommitted")
            except ResourceNotFoundError:
                return {}
        return {b.id: b.size for b in blocks}

    def _mpu_reopen(
        self, key: str, token: str, options: PutOptions, chunks: tuple[StoredChunk, ...]
    ) -> tuple[_Upload, int] | None:
        """The blob's uncommitted blocks of this upload (its tag), as recorded."""
        handle = _Upload(key=self.key(key), options=options, tag=token)
        staged = self._uncommitted(handle.key)
        if not any(block.startswith(f"{token}-") for block in staged):
            return None
        held = 0
        for chunk in chunks:
            if chunk.receipt != handle.block_id(chunk.number):
                break
            if staged.get(handle.block_id(chunk.number)) != chunk.size:
                break
            held += 1
        return handle, held

    def _pending_token(self, upload: PendingUpload) -> str:
        """The tag of the blob's first uncommitted block: the upload that staged it."""
        staged = self._uncommitted(upload.upload_id)
        return next(iter(staged), "").split("-", 1)[0]

    def _discard_uncommitted(self, full: str) -> None:
        # Uncommitted blocks vanish when a blob is written; a blob that does not exist yet
        # is written empty and deleted at once. A committed blob is left as it is.
        blob = self._blob(full)
        with self._guard(f"abort upload of {full}"):
            try:
                blob.get_blob_properties()
                return
            except ResourceNotFoundError:
                pass
            blob.upload_blob(b"", overwrite=True)
            blob.delete_blob()

    def _open_stream(self, key: str, start: int, end: int | None) -> RawStream:
        full = self.key(key)
        length = None if end is None else end - start
        if length == 0:
            return _AzureStream(None, full)
        with self._guard(f"get {full}"):
            try:
                downloader = self._blob(full).download_blob(
                    offset=start if (start or length is not None) else None,
                    length=length,
                    max_concurrency=1,
                )
            except HttpResponseError as exc:
                if exc.status_code == HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE:
                    return _AzureStream(None, full)
                raise
        return _AzureStream(downloader, f"get {full}")

    def _head(self, key: str) -> ObjectInfo:
        full = self.key(key)
        with self._guard(f"head {full}"):
            props = self._blob(full).get_blob_properties()
        return ObjectInfo(
            key=key,
            size=props.size,
            modified=props.last_modified,
            etag=props.etag,
            storage_class=str(props.blob_tier) if props.blob_tier else None,
            metadata=tuple(sorted((k.lower(), v) for k, v in (props.metadata or {}).items())),
        )

    def _list(
        self, prefix: str, delimiter: str | None, page_size: int | None
    ) -> Iterator[ObjectInfo | CommonPrefix]:
        full_prefix = self.full_prefix(prefix)
        with self._guard(f"list {full_prefix or '/'}"):
            items: Any
            if delimiter:
                items = self._container.walk_blobs(
                    name_starts_with=full_prefix or None,
                    delimiter=delimiter,
                    results_per_page=page_size,
                )
            else:
                items = self._container.list_blobs(
                    name_starts_with=full_prefix or None, results_per_page=page_size
                )
            for item in items:
                if isinstance(item, BlobPrefix):
                    yield CommonPrefix(self.relative(item.name))
                else:
                    yield ObjectInfo(
                        key=self.relative(item.name),
                        size=item.size,
                        modified=item.last_modified,
                        etag=item.etag,
                        storage_class=str(item.blob_tier) if item.blob_tier else None,
                    )

    def _delete(self, keys: list[str]) -> None:
        names = [self.key(k) for k in keys]
        with self._guard(f"delete {len(keys)} objects"):
            responses = self._container.delete_blobs(*names, raise_on_any_failure=False)
            failures = [r for r in responses if r.status_code not in (200, 202, 404)]
        if failures:
            raise errors.StorageError(
                f"could not delete {len(failures)} object(s): HTTP {failures[0].status_code}"
            )

    def _get_tags(self, key: str) -> dict[str, str]:
        full = self.key(key)
        with self._guard(f"get tags of {full}"):
            tags: dict[str, str] = self._blob(full).get_blob_tags()
        return tags

    def _set_tags(self, key: str, tags: dict[str, str]) -> None:
        full = self.key(key)
        with self._guard(f"set tags of {full}"):
            self._blob(full).set_blob_tags(tags)

    def _set_storage_class(self, key: str, storage_class: str) -> None:
        full = self.key(key)
        with self._guard(f"set the tier of {full}"):
            self._blob(full).set_standard_blob_tier(_tier(storage_class))

    def _rehydrate(self, key: str) -> bool:
        """Set Blob Tier back to Hot; while Azure rehydrates, archive_status says pending."""
        full = self.key(key)
        blob = self._blob(full)
        with self._guard(f"head {full}"):
            props = blob.get_blob_properties()
        if props.archive_status:
            return False
        if str(props.blob_tier or "") != "Archive":
            return True
        with self._guard(f"rehydrate {full}"):
            blob.set_standard_blob_tier(StandardBlobTier.HOT, rehydrate_priority="Standard")
        return False

    def _list_pending(self, prefix: str) -> list[PendingUpload]:
        full_prefix = self.full_prefix(prefix) or None
        with self._guard(f"list uploads under {full_prefix or '/'}"):
            committed = {b.name for b in self._container.list_blobs(name_starts_with=full_prefix)}
            every = self._container.list_blobs(
                name_starts_with=full_prefix, include=["uncommittedblobs"]
            )
            return [
                PendingUpload(key=self.relative(b.name), upload_id=b.name)
                for b in every
                if b.name not in committed
            ]

    def _abort_pending(self, upload: PendingUpload) -> None:
        self._discard_uncommitted(upload.upload_id)
