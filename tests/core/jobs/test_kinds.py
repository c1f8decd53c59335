"""Job requests survive the trip to a worker process: nested dataclasses, enums, tuples."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from core.errors import OperationFailed
from core.jobs import JobInfo, JobKind, load_kind
from core.jobs.kinds import decode_request, encode_request
from core.storage import StoreConfig
from core.storage.retry import RetryPolicy
from core.urls import Credentials, Location, Provider, parse_location
from tests.support.jobkinds import UPLOAD


@dataclass(frozen=True)
class Inner:
    provider: Provider
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Request:
    location: Location
    config: StoreConfig = field(default_factory=StoreConfig)
    inner: Inner | None = None
    level: int | None = None


KIND: JobKind[Request] = JobKind(
    name="roundtrip",
    request_type=Request,
    run=lambda request, reporter: None,
    describe=lambda request: JobInfo("roundtrip"),
    entry="tests.core.jobs.test_kinds:KIND",
)


def test_a_request_round_trips_with_its_types() -> None:
    location = parse_location(
        "s3://bucket/prefix?AWS_ACCESS_KEY_ID=id&AWS_SECRET_ACCESS_KEY=secretsecret"
    )
    request = Request(
        location,
        StoreConfig(jobs=4, max_bandwidth=5, retry=RetryPolicy(attempts=2)),
        Inner(Provider.GCS, (("a", "1"), ("b", "2"))),
    )
    back = decode_request(KIND, encode_request(KIND, request))
    assert back == request
    assert back.location.provider is Provider.S3
    assert isinstance(back.location.credentials, Credentials)
    assert back.location.credentials.aws_secret_access_key == "secretsecret"
    assert back.inner is not None and back.inner.provider is Provider.GCS
    assert back.config.retry == RetryPolicy(attempts=2)


def test_kinds_load_by_entry_and_refuse_impostors() -> None:
    assert load_kind("test-upload", UPLOAD.entry) is UPLOAD
    with pytest.raises(OperationFailed, match="is not the 'other' job kind"):
        load_kind("other", UPLOAD.entry)
    with pytest.raises(OperationFailed, match="cannot load"):
        load_kind("x", "tests.nowhere:KIND")
    with pytest.raises(OperationFailed, match="malformed"):
        decode_request(KIND, "{not json")
