"""Amazon S3 and S3-compatible stores through boto3: multipart uploads, tags, SSE, classes."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import botocore.exceptions as bce
from botocore.config import Config

from core import errors
from core.storage.backend import MiB, RawStream
from core.storage.bandwidth import Payload
from core.storage.clients import Timeouts
from core.storage.config import OBJECT_LOCK_MODE, StoreConfig, check_s3_encryption
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

_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
    "502",
    "504",
    "RequestLimitExceeded",
}
_DENIED_CODES = {
    "AccessDenied",
    "403",
    "401",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
    "AccountProblem",
}
_CLIENT = (bce.ClientError,)


def _facts(exc: BaseException) -> Facts:
    """An S3 error answer's code, HTTP status and message."""
    if not isinstance(exc, bce.ClientError):
        return {}
    code = _code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    message = exc.response.get("Error", {}).get("Message") or code
    return {"code": code, "status": status, "message": message}


def _code(exc: bce.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


ERRORS = ErrorTable(
    (
        Rule(
            errors.ContainerNotFound,
            "{what}: bucket{named} does not exist",
            _CLIENT,
            {"NoSuchBucket"},
        ),
        Rule(
            errors.ObjectNotFound,
            "{what}: not found",
            _CLIENT,
            codes={"NoSuchKey", "404", "NotFound", "NoSuchUpload"},
        ),
        Rule(
            errors.ObjectExists,
            "{what}: object already exists",
            _CLIENT,
            codes={"PreconditionFailed", "412", "ConditionalRequestConflict"},
        ),
        Rule(
            errors.ObjectArchived,
            "{what}: the object is in the archive tier (rehydrate it first)",
            _CLIENT,
            {"InvalidObjectState", "ObjectNotInActiveTierError"},
        ),
        Rule(errors.AccessDenied, "{what}: access denied ({code})", _CLIENT, _DENIED_CODES),
        Rule(errors.AccessDenied, "{what}: access denied ({code})", _CLIENT, statuses={401, 403}),
        # 501: the store does not have that request (an S3-compatible one without Object
        # Lock): a 5xx no retry changes, so no TransientError
        Rule(
            errors.StorageError,
            "{what}: this S3-compatible store does not implement it ({code}, HTTP 501)",
            _CLIENT,
            statuses={501},
        ),
        Rule(errors.TransientError, "{what}: {message}", _CLIENT, _TRANSIENT_CODES),
        Rule(errors.TransientError, "{what}: {message}", _CLIENT, statuses=SERVER_ERRORS),
        Rule(errors.StorageError, "{what}: {code}: {message}", _CLIENT),
        Rule(
            errors.EndpointUnreachable,
            "{what}: cannot reach the S3 endpoint ({exc})",
            (bce.EndpointConnectionError, bce.ConnectTimeoutError),
        ),
        Rule(
            errors.TransientError,
            "{what}: {exc}",
            (
                bce.ReadTimeoutError,
                bce.ConnectionClosedError,
                bce.ResponseStreamingError,
                bce.IncompleteReadError,
                bce.HTTPClientError,
                ConnectionError,
            ),
        ),
        Rule(
            errors.AccessDenied,
            "{what}: no AWS credentials found ({exc})",
            (bce.NoCredentialsError, bce.PartialCredentialsError),
        ),
        Rule(errors.InputError, "{exc}", (bce.ProfileNotFound,)),
        Rule(errors.StorageError, "{what}: {exc}", (bce.BotoCoreError,)),
    ),
    _facts,
)
_guard = ERRORS.guard


@dataclass
class _Upload:
    key: str
    upload_id: str
    if_absent: bool = False


class _S3Stream(RawStream):
    def __init__(self, body: Any, what: str) -> None:
        self._body = body
        self._what = what

    def read(self, n: int) -> bytes:
        with _guard(self._what):
            data: bytes = self._body.read(n)
            return data

    def close(self) -> None:
        self._body.close()


def _charging_off(request: Any, **_: Any) -> None:
    if isinstance(getattr(request, "body", None), Payload):
        request.body.charging = False


def _charging_on(request: Any, **_: Any) -> None:
    if isinstance(getattr(request, "body", None), Payload):
        request.body.charging = True


def _crc32_b64(body: Payload) -> str:
    crc = zlib.crc32(body._view)
    return base64.b64encode(crc.to_bytes(4, "big")).decode()


def _client(location: Location, config: StoreConfig) -> Any:
    """A boto3 S3 client with pgvault's timeouts, without botocore's checksums."""
    creds = location.credentials
    try:
        session = boto3.session.Session(
            profile_name=config.aws_profile,
            aws_access_key_id=creds.aws_access_key_id,
            aws_secret_access_key=creds.aws_secret_access_key,
            aws_session_token=creds.aws_session_token,
            region_name=location.region,
        )
    except bce.ProfileNotFound as exc:  # -P, or AWS_PROFILE in the environment
        raise errors.InputError(f"AWS profile {exc.kwargs.get('profile')!r} not found") from exc
    except bce.ConfigParseError as exc:  # AWS_CONFIG_FILE, ~/.aws/config
        raise errors.InputError(f"{exc}: fix or move it") from exc
    try:
        client = _boto_client(session, location, config)
    except bce.InvalidRegionError as exc:
        # botocore's ValidationError would surface as an unexpected error (exit 4)
        raise errors.InputError(
            f"AWS region {session.region_name!r} is not a region name (AWS_REGION in the URL "
            "or the environment, or the profile's region)"
        ) from exc
    except ValueError as exc:  # an endpoint from AWS_ENDPOINT_URL or the profile
        raise errors.InputError(f"{exc} (AWS_ENDPOINT_URL or the profile's endpoint_url)") from exc
    # Over plain http SigV4 hashes every body before sending it; that read must not
    # spend the bandwidth budget, or whole parts would burst onto the wire afterwards.
    events = client.meta.events
    events.register("before-sign.s3", _charging_off)
    events.register("before-send.s3", _charging_on)
    return client


def _boto_client(session: Any, location: Location, config: StoreConfig) -> Any:
    timeouts = Timeouts.of(config)
    s3_options: Any = (
        {"addressing_style": config.addressing_style} if config.addressing_style else {}
    )
    return session.client(
        "s3",
        endpoint_url=config.endpoint_url or location.endpoint,
        config=Config(
            read_timeout=timeouts.read,
            connect_timeout=timeouts.connect,
            # total_max_attempts counts the first request; botocore's "max_attempts" key
            # counts retries (1 meant two requests per store attempt).
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max(10, config.jobs * 2 + 2),
            s3=s3_options or None,
            # pgvault sends its own CRC32 per part; botocore must not re-read bodies.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


#: the archive tier: Flexible Retrieval (DEEP_ARCHIVE is also rehydrated, never written)
ARCHIVE_CLASS = "GLACIER"
ARCHIVED_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})


class S3Store(ObjectStore):
    """An S3 bucket (or an S3-compatible service through --endpoint-url)."""

    provider = Provider.S3
    ERRORS = ERRORS
    min_part_size = 5 * 1024 * 1024
    max_parts = 10_000
    delete_batch = 1000
    archive_class = ARCHIVE_CLASS
    archived_classes = ARCHIVED_CLASSES

    def __init__(self, location: Location, config: StoreConfig) -> None:
        super().__init__(location, config)
        check_s3_encryption(config)
        self._client = _client(location, config)
        self.bucket = location.bucket

    def close(self) -> None:
        # The client's pooled connections are closed now, not whenever the client is freed
        # (see AzureStore.close: the other SDKs' clients are not freed until a full garbage
        # collection).
        super().close()
        self._client.close()

    def default_chunk_size(self) -> int:
        # 8 MiB, as the AWS CLI's multipart parts: each job holds one part in memory. A
        # backup's archives raise it so that -S plus one 1 GiB file fits in 10,000 parts
        # (11 MiB with the default -S of 100 GiB: core.backup.stream.chunk_size).
        return 8 * MiB

    def _extra(self, options: PutOptions) -> dict[str, Any]:
        extra: dict[str, Any] = self._lock()
        if options.tags:
            extra["Tagging"] = urlencode(options.tags, quote_via=quote)
        if options.storage_class:
            extra["StorageClass"] = options.storage_class
        if options.metadata:
            extra["Metadata"] = options.metadata_dict()
        if self.config.sse:
            extra["ServerSideEncryption"] = self.config.sse
        if self.config.sse_kms_key_id:
            extra["SSEKMSKeyId"] = self.config.sse_kms_key_id
        return extra

    def _lock(self) -> dict[str, Any]:
        """The Object Lock retention of an object written now (StoreConfig.object_lock_days)."""
        days = self.config.object_lock_days
        if days is None:
            return {}
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
        return {"ObjectLockMode": OBJECT_LOCK_MODE, "ObjectLockRetainUntilDate": until}

    def object_lock_enabled(self) -> bool:
        def ask() -> bool:
            with self._guard(f"get the Object Lock configuration of bucket {self.bucket}"):
                try:
                    answer = self._client.get_object_lock_configuration(Bucket=self.bucket)
                except bce.ClientError as exc:
                    if _code(exc) == "ObjectLockConfigurationNotFoundError":
                        return False
                    raise
            enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
            return bool(enabled == "Enabled")

        return bool(self._retry(ask, f"Object Lock of bucket {self.bucket}"))

    def _check(self) -> None:
        with self._guard(f"bucket {self.bucket}"):
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except bce.ClientError as exc:
                if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                    raise errors.ContainerNotFound(f"bucket {self.bucket} does not exist") from None
                raise

    def _put(self, key: str, body: Payload, options: PutOptions) -> None:
        full = self.key(key)
        args = self._extra(options)
        if options.if_absent:
            args["IfNoneMatch"] = "*"
        if "ObjectLockMode" in args:
            # S3 wants x-amz-sdk-checksum-algorithm (or Content-MD5) with a retention; the
            # CRC32 itself is still the one sent below, botocore does not compute another.
            args["ChecksumAlgorithm"] = "CRC32"
        with self._guard(f"put {full}"):
            self._client.put_object(
                Bucket=self.bucket,
                Key=full,
                Body=body,
                ContentLength=len(body),
                ChecksumCRC32=_crc32_b64(body),
                **args,
            )

    def _mpu_begin(self, key: str, options: PutOptions) -> _Upload:
        full = self.key(key)
        if options.if_absent and self._exists_raw(full):
            raise errors.ObjectExists(f"{full}: object already exists")
        with self._guard(f"start upload of {full}"):
            answer = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=full, ChecksumAlgorithm="CRC32", **self._extra(options)
            )
        return _Upload(key=full, upload_id=answer["UploadId"], if_absent=options.if_absent)

    def _mpu_part(self, handle: _Upload, number: int, offset: int, body: Payload) -> Any:
        with self._guard(f"upload part {number} of {handle.key}"):
            checksum = _crc32_b64(body)
            answer = self._client.upload_part(
                Bucket=self.bucket,
                Key=handle.key,
                UploadId=handle.upload_id,
                PartNumber=number,
                Body=body,
                ContentLength=len(body),
                ChecksumCRC32=checksum,
            )
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": checksum}

    def _mpu_complete(self, handle: _Upload, parts: list[Any]) -> None:
        # If-None-Match on the completion makes if_absent atomic (S3 since 2024-08).
        condition = {"IfNoneMatch": "*"} if handle.if_absent else {}
        with self._guard(f"complete upload of {handle.key}"):
            answer = self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=handle.key,
                UploadId=handle.upload_id,
                MultipartUpload={"Parts": parts},
                **condition,
            )
        lock = self._lock()
        if lock:
            # Some stores (moto) drop the lock given to CreateMultipartUpload: set it on
            # the version just completed.
            version = {"VersionId": answer["VersionId"]} if answer.get("VersionId") else {}
            retention = {
                "Mode": lock["ObjectLockMode"],
                "RetainUntilDate": lock["ObjectLockRetainUntilDate"],
            }
            with self._guard(f"lock {handle.key}"):
                self._client.put_object_retention(
                    Bucket=self.bucket, Key=handle.key, Retention=retention, **version
                )

    def _mpu_abort(self, handle: _Upload) -> None:
        with self._guard(f"abort upload of {handle.key}"):
            try:
                self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=handle.key, UploadId=handle.upload_id
                )
            except bce.ClientError as exc:
                if _code(exc) != "NoSuchUpload":
                    raise

    def _mpu_token(self, handle: _Upload) -> str:
        return handle.upload_id

    def _mpu_reopen(
        self, key: str, token: str, options: PutOptions, chunks: tuple[StoredChunk, ...]
    ) -> tuple[_Upload, int] | None:
        """The upload again (ListParts) and its leading parts listed as recorded."""
        handle = _Upload(key=self.key(key), upload_id=token, if_absent=options.if_absent)
        listed: dict[int, tuple[int, str]] = {}
        paginator = self._client.get_paginator("list_parts")
        with self._guard(f"list the parts of the upload of {handle.key}"):
            try:
                for page in paginator.paginate(Bucket=self.bucket, Key=handle.key, UploadId=token):
                    for part in page.get("Parts", []):
                        listed[part["PartNumber"]] = (part["Size"], part["ETag"])
            except bce.ClientError as exc:
                if _code(exc) == "NoSuchUpload":
                    return None
                raise
        held = 0
        for chunk in chunks:
            receipt = chunk.receipt if isinstance(chunk.receipt, dict) else {}
            if listed.get(chunk.number) != (chunk.size, receipt.get("ETag")):
                break
            held += 1
        return handle, held

    def _exists_raw(self, full: str) -> bool:
        with self._guard(f"head {full}"):
            try:
                self._client.head_object(Bucket=self.bucket, Key=full)
            except bce.ClientError as exc:
                if _code(exc) in ("404", "NoSuchKey"):
                    return False
                raise
        return True

    def _open_stream(self, key: str, start: int, end: int | None) -> RawStream:
        full = self.key(key)
        args: dict[str, Any] = {}
        if start or end is not None:
            args["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
        with self._guard(f"get {full}"):
            try:
                answer = self._client.get_object(Bucket=self.bucket, Key=full, **args)
            except bce.ClientError as exc:
                if _code(exc) == "InvalidRange":
                    return _S3Stream(_Empty(), full)
                raise
        return _S3Stream(answer["Body"], f"get {full}")

    def _head(self, key: str) -> ObjectInfo:
        full = self.key(key)
        with self._guard(f"head {full}"):
            answer = self._client.head_object(Bucket=self.bucket, Key=full)
        return ObjectInfo(
            key=key,
            size=answer["ContentLength"],
            modified=answer.get("LastModified"),
            etag=answer.get("ETag"),
            storage_class=answer.get("StorageClass", "STANDARD"),
            metadata=tuple(sorted((k.lower(), v) for k, v in answer.get("Metadata", {}).items())),
            lock_mode=answer.get("ObjectLockMode"),
            locked_until=answer.get("ObjectLockRetainUntilDate"),
            legal_hold=answer.get("ObjectLockLegalHoldStatus") == "ON",
        )

    def _list(
        self, prefix: str, delimiter: str | None, page_size: int | None
    ) -> Iterator[ObjectInfo | CommonPrefix]:
        full_prefix = self.full_prefix(prefix)
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full_prefix}
        if delimiter:
            args["Delimiter"] = delimiter
        paginator = self._client.get_paginator("list_objects_v2")
        config = {"PageSize": page_size} if page_size else {}
        with self._guard(f"list {full_prefix or '/'}"):
            for page in paginator.paginate(**args, PaginationConfig=config):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=self.relative(item["Key"]),
                        size=item["Size"],
                        modified=item.get("LastModified"),
                        etag=item.get("ETag"),
                        storage_class=item.get("StorageClass"),
                    )
                for common in page.get("CommonPrefixes", []):
                    yield CommonPrefix(self.relative(common["Prefix"]))

    def _delete(self, keys: list[str]) -> None:
        objects = [{"Key": self.key(k)} for k in keys]
        with self._guard(f"delete {len(keys)} objects"):
            answer = self._delete_objects(objects)
            if answer is None:
                # Some S3-compatible stores reject bulk deletes (barman #1138): one by one,
                # outside the handler of that refusal, so that their errors are their own.
                for obj in objects:
                    self._client.delete_object(Bucket=self.bucket, Key=obj["Key"])
                return
        failed = answer.get("Errors", [])
        if failed:
            first = failed[0]
            raise errors.StorageError(
                f"could not delete {len(failed)} object(s), first {first.get('Key')}: "
                f"{first.get('Code')} {first.get('Message', '')}".strip()
            )

    def _delete_objects(self, objects: list[dict[str, str]]) -> Any:
        """One bulk delete; None when the store refuses bulk deletes."""
        try:
            return self._client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
            )
        except bce.ClientError as exc:
            if _code(exc) != "MissingContentMD5":
                raise
        return None

    def _get_tags(self, key: str) -> dict[str, str]:
        full = self.key(key)
        with self._guard(f"get tags of {full}"):
            answer = self._client.get_object_tagging(Bucket=self.bucket, Key=full)
        return {t["Key"]: t["Value"] for t in answer.get("TagSet", [])}

    def _set_tags(self, key: str, tags: dict[str, str]) -> None:
        full = self.key(key)
        with self._guard(f"set tags of {full}"):
            self._client.put_object_tagging(
                Bucket=self.bucket,
                Key=full,
                Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]},
            )

    def _set_storage_class(self, key: str, storage_class: str) -> None:
        full = self.key(key)
        extra: dict[str, Any] = self._lock()  # a copy is a new version: locked as well
        if self.config.sse:
            extra["ServerSideEncryption"] = self.config.sse
        if self.config.sse_kms_key_id:
            extra["SSEKMSKeyId"] = self.config.sse_kms_key_id
        with self._guard(f"change the storage class of {full}"):
            self._client.copy_object(
                Bucket=self.bucket,
                Key=full,
                CopySource={"Bucket": self.bucket, "Key": full},
                StorageClass=storage_class,
                MetadataDirective="COPY",
                TaggingDirective="COPY",
                **extra,
            )

    def _rehydrate(self, key: str) -> bool:
        """RestoreObject makes a temporary readable copy; once it is ready, a copy in place
        to STANDARD makes the object permanently online again (the reference's 3.1)."""
        full = self.key(key)
        with self._guard(f"head {full}"):
            answer = self._client.head_object(Bucket=self.bucket, Key=full)
        if answer.get("StorageClass", "STANDARD") not in ARCHIVED_CLASSES:
            return True
        restore = answer.get("Restore")
        if restore is None:
            with self._guard(f"request the restore of {full}"):
                self._client.restore_object(
                    Bucket=self.bucket,
                    Key=full,
                    RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Standard"}},
                )
            return False
        if 'ongoing-request="true"' in restore:
            return False
        self._set_storage_class(key, "STANDARD")
        return True

    def _list_pending(self, prefix: str) -> list[PendingUpload]:
        full_prefix = self.full_prefix(prefix)
        pending = []
        paginator = self._client.get_paginator("list_multipart_uploads")
        with self._guard(f"list uploads under {full_prefix or '/'}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
                for upload in page.get("Uploads", []):
                    pending.append(
                        PendingUpload(
                            key=self.relative(upload["Key"]),
                            upload_id=upload["UploadId"],
                            started=upload.get("Initiated"),
                        )
                    )
        return pending

    def _abort_pending(self, upload: PendingUpload) -> None:
        self._mpu_abort(_Upload(key=self.key(upload.key), upload_id=upload.upload_id))


class _Empty:
    def read(self, n: int) -> bytes:
        return b""

    def close(self) -> None:
        return None
