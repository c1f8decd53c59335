"""Amazon S3 and S3-compatible stores through boto3: multipart uploads, tags, SSE, classes."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import botocore.exceptions as bce
from botocore.config import Config

from core.errors import (
    AccessDenied,
    ContainerNotFound,
    EndpointUnreachable,
    InputError,
    ObjectExists,
    ObjectNotFound,
    PgvaultError,
    StorageError,
    TransientError,
    own_cause,
)
from core.storage.bandwidth import Payload
from core.storage.base import (
    CommonPrefix,
    ObjectInfo,
    ObjectStore,
    PendingUpload,
    PutOptions,
    RawStream,
    StoreConfig,
)
from core.urls import Location, Provider

SSE_CHOICES = ("AES256", "aws:kms")
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


def translate(exc: BaseException, what: str) -> PgvaultError:
    """Map a boto3/botocore exception to pgvault's hierarchy."""
    own = own_cause(exc)
    if own is not None:
        return own
    if isinstance(exc, bce.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = error.get("Message") or code
        if code in ("NoSuchBucket",):
            return ContainerNotFound(f"{what}: bucket does not exist")
        if code in ("NoSuchKey", "404", "NotFound", "NoSuchUpload"):
            return ObjectNotFound(f"{what}: not found")
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return ObjectExists(f"{what}: object already exists")
        if code in _DENIED_CODES or status in (401, 403):
            return AccessDenied(f"{what}: access denied ({code})")
        if code in _TRANSIENT_CODES or (isinstance(status, int) and status >= 500):
            return TransientError(f"{what}: {message}")
        return StorageError(f"{what}: {code}: {message}")
    if isinstance(exc, bce.EndpointConnectionError | bce.ConnectTimeoutError):
        return EndpointUnreachable(f"{what}: cannot reach the S3 endpoint ({exc})")
    if isinstance(
        exc,
        bce.ReadTimeoutError
        | bce.ConnectionClosedError
        | bce.ResponseStreamingError
        | bce.IncompleteReadError
        | bce.HTTPClientError
        | ConnectionError,
    ):
        return TransientError(f"{what}: {exc}")
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return AccessDenied(f"{what}: no AWS credentials found ({exc})")
    if isinstance(exc, bce.ProfileNotFound):
        return InputError(str(exc))
    if isinstance(exc, bce.BotoCoreError):
        return StorageError(f"{what}: {exc}")
    raise exc


class _Guard:
    """Translate SDK exceptions raised inside a `with` block."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and not isinstance(exc, PgvaultError) and isinstance(exc, Exception):
            raise translate(exc, self.what) from exc


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
        with _Guard(self._what):
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


class S3Store(ObjectStore):
    """An S3 bucket (or an S3-compatible service through --endpoint-url)."""

    provider = Provider.S3
    min_part_size = 5 * 1024 * 1024
    max_parts = 10_000
    delete_batch = 1000

    def __init__(self, location: Location, config: StoreConfig) -> None:
        super().__init__(location, config)
        if config.sse and config.sse not in SSE_CHOICES:
            raise InputError(f"-e/--encryption must be one of {', '.join(SSE_CHOICES)}")
        if config.sse_kms_key_id and config.sse != "aws:kms":
            raise InputError("--sse-kms-key-id needs -e aws:kms")
        creds = location.credentials
        try:
            session = boto3.session.Session(
                profile_name=config.aws_profile,
                aws_access_key_id=creds.aws_access_key_id,
                aws_secret_access_key=creds.aws_secret_access_key,
                aws_session_token=creds.aws_session_token,
                region_name=location.region,
            )
        except bce.ProfileNotFound as exc:
            raise InputError(f"AWS profile {config.aws_profile!r} not found") from exc
        s3_config: Any = {}
        if config.addressing_style:
            s3_config["addressing_style"] = config.addressing_style
        self._client: Any = session.client(
            "s3",
            endpoint_url=config.endpoint_url or location.endpoint,
            config=Config(
                read_timeout=config.read_timeout or 60,
                connect_timeout=10,
                retries={"max_attempts": 1, "mode": "standard"},
                max_pool_connections=max(10, config.jobs * 2 + 2),
                s3=s3_config or None,
                # pgvault sends its own CRC32 per part; botocore must not re-read bodies.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
        self.bucket = location.bucket
        # Over plain http SigV4 hashes every body before sending it; that read must not
        # spend the bandwidth budget, or whole parts would burst onto the wire afterwards.
        events = self._client.meta.events
        events.register("before-sign.s3", _charging_off)
        events.register("before-send.s3", _charging_on)

    def _extra(self, options: PutOptions) -> dict[str, Any]:
        extra: dict[str, Any] = {}
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

    def _check(self) -> None:
        with _Guard(f"bucket {self.bucket}"):
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except bce.ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in ("404", "NoSuchBucket", "NotFound"):
                    raise ContainerNotFound(f"bucket {self.bucket} does not exist") from None
                raise

    def _put(self, key: str, body: Payload, options: PutOptions) -> None:
        full = self.key(key)
        args = self._extra(options)
        if options.if_absent:
            args["IfNoneMatch"] = "*"
        with _Guard(f"put {full}"):
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
            raise ObjectExists(f"{full}: object already exists")
        with _Guard(f"start upload of {full}"):
            answer = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=full, ChecksumAlgorithm="CRC32", **self._extra(options)
            )
        return _Upload(key=full, upload_id=answer["UploadId"], if_absent=options.if_absent)

    def _mpu_part(self, handle: _Upload, number: int, offset: int, body: Payload) -> Any:
        with _Guard(f"upload part {number} of {handle.key}"):
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
        with _Guard(f"complete upload of {handle.key}"):
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=handle.key,
                UploadId=handle.upload_id,
                MultipartUpload={"Parts": parts},
                **condition,
            )

    def _mpu_abort(self, handle: _Upload) -> None:
        with _Guard(f"abort upload of {handle.key}"):
            try:
                self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=handle.key, UploadId=handle.upload_id
                )
            except bce.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    raise

    def _exists_raw(self, full: str) -> bool:
        with _Guard(f"head {full}"):
            try:
                self._client.head_object(Bucket=self.bucket, Key=full)
            except bce.ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey"):
                    return False
                raise
        return True

    def _open_stream(self, key: str, start: int, end: int | None) -> RawStream:
        full = self.key(key)
        args: dict[str, Any] = {}
        if start or end is not None:
            args["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
        with _Guard(f"get {full}"):
            try:
                answer = self._client.get_object(Bucket=self.bucket, Key=full, **args)
            except bce.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                    return _S3Stream(_Empty(), full)
                raise
        return _S3Stream(answer["Body"], f"get {full}")

    def _head(self, key: str) -> ObjectInfo:
        full = self.key(key)
        with _Guard(f"head {full}"):
            answer = self._client.head_object(Bucket=self.bucket, Key=full)
        return ObjectInfo(
            key=key,
            size=answer["ContentLength"],
            modified=answer.get("LastModified"),
            etag=answer.get("ETag"),
            storage_class=answer.get("StorageClass", "STANDARD"),
            metadata=tuple(sorted((k.lower(), v) for k, v in answer.get("Metadata", {}).items())),
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
        with _Guard(f"list {full_prefix or '/'}"):
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
        with _Guard(f"delete {len(keys)} objects"):
            try:
                answer = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
            except bce.ClientError as exc:
                # Some S3-compatible stores reject bulk deletes (barman #1138): one by one.
                if exc.response.get("Error", {}).get("Code") != "MissingContentMD5":
                    raise
                for obj in objects:
                    self._client.delete_object(Bucket=self.bucket, Key=obj["Key"])
                return
        errors = answer.get("Errors", [])
        if errors:
            first = errors[0]
            raise StorageError(
                f"could not delete {len(errors)} object(s), first {first.get('Key')}: "
                f"{first.get('Code')} {first.get('Message', '')}".strip()
            )

    def _get_tags(self, key: str) -> dict[str, str]:
        full = self.key(key)
        with _Guard(f"get tags of {full}"):
            answer = self._client.get_object_tagging(Bucket=self.bucket, Key=full)
        return {t["Key"]: t["Value"] for t in answer.get("TagSet", [])}

    def _set_tags(self, key: str, tags: dict[str, str]) -> None:
        full = self.key(key)
        with _Guard(f"set tags of {full}"):
            self._client.put_object_tagging(
                Bucket=self.bucket,
                Key=full,
                Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]},
            )

    def _set_storage_class(self, key: str, storage_class: str) -> None:
        full = self.key(key)
        extra: dict[str, Any] = {}
        if self.config.sse:
            extra["ServerSideEncryption"] = self.config.sse
        if self.config.sse_kms_key_id:
            extra["SSEKMSKeyId"] = self.config.sse_kms_key_id
        with _Guard(f"change the storage class of {full}"):
            self._client.copy_object(
                Bucket=self.bucket,
                Key=full,
                CopySource={"Bucket": self.bucket, "Key": full},
                StorageClass=storage_class,
                MetadataDirective="COPY",
                TaggingDirective="COPY",
                **extra,
            )

    def _list_pending(self, prefix: str) -> list[PendingUpload]:
        full_prefix = self.full_prefix(prefix)
        pending = []
        paginator = self._client.get_paginator("list_multipart_uploads")
        with _Guard(f"list uploads under {full_prefix or '/'}"):
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
