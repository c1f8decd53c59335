"""Each provider's error table: SDK exceptions become pgvault's errors, with their messages."""

from __future__ import annotations

import botocore.exceptions as bce
import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ServiceRequestError
from google.api_core import exceptions as gexc

from core.errors import (
    Cancelled,
    ContainerNotFound,
    EndpointUnreachable,
    ObjectExists,
    PgvaultError,
    StorageError,
    TransientError,
)
from core.storage import azure, gcs, s3
from core.storage.translate import ErrorTable


def _s3(code: str, status: int, message: str = "msg") -> bce.ClientError:
    answer = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {}}
    answer["ResponseMetadata"]["HTTPStatusCode"] = status  # type: ignore[index]
    return bce.ClientError(answer, "Op")  # type: ignore[arg-type]


def _azure(kind: type[HttpResponseError], status: int, code: str | None) -> HttpResponseError:
    error = kind(message="m")
    error.status_code = status
    error.error_code = code
    return error


CASES = [
    (s3.ERRORS, _s3("SlowDown", 503, "Please reduce"), TransientError, "x: Please reduce"),
    (s3.ERRORS, _s3("Teapot", 599), TransientError, "x: msg"),
    (s3.ERRORS, _s3("PreconditionFailed", 412), ObjectExists, "x: object already exists"),
    (s3.ERRORS, _s3("NoSuchBucket", 404), ContainerNotFound, "x: bucket does not exist"),
    (s3.ERRORS, _s3("Weird", 400), StorageError, "x: Weird: msg"),
    (
        s3.ERRORS,
        bce.EndpointConnectionError(endpoint_url="http://h"),
        EndpointUnreachable,
        'x: cannot reach the S3 endpoint (Could not connect to the endpoint URL: "http://h")',
    ),
    (
        azure.ERRORS,
        _azure(HttpResponseError, 503, "ServerBusy"),
        TransientError,
        "x: HTTP 503 ServerBusy",
    ),
    (azure.ERRORS, _azure(HttpResponseError, 400, None), StorageError, "x: HTTP 400"),
    (azure.ERRORS, _azure(HttpResponseError, 412, None), ObjectExists, "x: object already exists"),
    (azure.ERRORS, _azure(ResourceExistsError, 409, "Other"), StorageError, "x: Other"),
    (
        azure.ERRORS,
        ServiceRequestError("down"),
        EndpointUnreachable,
        "x: cannot reach the Azure endpoint",
    ),
    (gcs.ERRORS, gexc.ServiceUnavailable("down"), TransientError, "x: 503 down"),
    (gcs.ERRORS, gexc.NotFound("bucket b"), ContainerNotFound, "x: bucket does not exist"),
    (gcs.ERRORS, gexc.BadRequest("bad"), StorageError, "x: 400 bad"),
    (gcs.ERRORS, requests.exceptions.ReadTimeout("t"), TransientError, "x: ReadTimeout"),
    (
        gcs.ERRORS,
        requests.exceptions.ConnectionError("Connection refused"),
        EndpointUnreachable,
        "x: cannot reach the GCS endpoint",
    ),
    (
        gcs.ERRORS,
        requests.exceptions.ConnectionError("reset"),
        TransientError,
        "x: connection dropped",
    ),
]


@pytest.mark.parametrize(("table", "exc", "kind", "message"), CASES)
def test_each_sdk_error_maps_to_its_class_and_message(
    table: ErrorTable, exc: Exception, kind: type[PgvaultError], message: str
) -> None:
    error = table.translate(exc, "x")
    assert type(error) is kind
    assert str(error) == message


def test_a_missing_bucket_or_container_is_named_when_the_guard_knows_it() -> None:
    cases = [
        (s3.ERRORS, _s3("NoSuchBucket", 404), "get k: bucket b1 does not exist"),
        (gcs.ERRORS, gexc.NotFound("bucket b1"), "get k: bucket b1 does not exist"),
        (gcs.LISTING_ERRORS, gexc.NotFound("no word of it"), "get k: bucket b1 does not exist"),
    ]
    for table, exc, message in cases:
        with pytest.raises(ContainerNotFound) as raised, table.guard("get k", "b1"):
            raise exc
        assert str(raised.value) == message


@pytest.mark.parametrize("table", [s3.ERRORS, azure.ERRORS, gcs.ERRORS])
def test_what_is_not_the_sdks_passes_unchanged(table: ErrorTable) -> None:
    assert table.translate(ValueError("a bug"), "x") is None
    with pytest.raises(ValueError, match="a bug"), table.guard("x"):
        raise ValueError("a bug")


def test_a_cancel_an_sdk_wrapped_is_found_but_not_an_error_being_handled() -> None:
    cancelled = Cancelled("cancelled by the operator")
    wrapped = bce.HTTPClientError(error=cancelled)
    assert s3.ERRORS.translate(wrapped, "put x") is cancelled
    try:
        raise ObjectExists("put x: object already exists")
    except ObjectExists:
        try:
            raise _s3("SlowDown", 503)
        except bce.ClientError as met:
            error = s3.ERRORS.translate(met, "list x")
    assert type(error) is TransientError
