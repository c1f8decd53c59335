"""Destination URLs in barman-cloud's forms, CockroachDB's query parameters, and file://."""

import base64

import pytest

from core.errors import InputError
from core.secrets import redact
from core.urls import Provider, parse_endpoint, parse_location


def test_s3_with_prefix_and_inferred_provider() -> None:
    loc = parse_location("s3://bucket/path/to/folder")
    assert (loc.provider, loc.bucket, loc.prefix) == (Provider.S3, "bucket", "path/to/folder")
    assert loc.display() == "s3://bucket/path/to/folder"
    assert loc.child("pg1", "base/") == "path/to/folder/pg1/base"


def test_s3_cockroach_credentials_are_hidden() -> None:
    loc = parse_location(
        "s3://acme-co/backups?AWS_ACCESS_KEY_ID=AKID&AWS_SECRET_ACCESS_KEY=VERYSECRET"
        "&AWS_REGION=eu-west-1&AWS_ENDPOINT=http://127.0.0.1:9000"
    )
    assert loc.credentials.aws_access_key_id == "AKID"
    assert loc.region == "eu-west-1" and loc.endpoint == "http://127.0.0.1:9000"
    assert "VERYSECRET" not in repr(loc) and "VERYSECRET" not in loc.display()
    assert "VERYSECRET" not in redact("error VERYSECRET")


def test_azure_account_url() -> None:
    loc = parse_location("https://acct.blob.core.windows.net/ctr/pre/fix")
    assert (loc.provider, loc.account, loc.bucket, loc.prefix) == (
        Provider.AZURE,
        "acct",
        "ctr",
        "pre/fix",
    )
    assert loc.endpoint == "https://acct.blob.core.windows.net"
    assert loc.display() == "https://acct.blob.core.windows.net/ctr/pre/fix"


def test_azure_emulator_url() -> None:
    loc = parse_location(
        "http://127.0.0.1:10000/devstoreaccount1/ctr/pg", cloud_provider="azure-blob-storage"
    )
    assert (loc.account, loc.bucket, loc.prefix) == ("devstoreaccount1", "ctr", "pg")
    assert loc.endpoint == "http://127.0.0.1:10000/devstoreaccount1"
    assert loc.display() == "http://127.0.0.1:10000/devstoreaccount1/ctr/pg"


def test_azure_short_form_with_key() -> None:
    loc = parse_location("azure://ctr/pg?AZURE_ACCOUNT_NAME=acme&AZURE_ACCOUNT_KEY=KEY123")
    assert (loc.account, loc.bucket, loc.prefix) == ("acme", "ctr", "pg")
    assert loc.credentials.azure_account_key == "KEY123"
    assert "KEY123" not in repr(loc)


def test_gcs_forms_and_credentials() -> None:
    assert parse_location("gs://b/p").provider is Provider.GCS
    loc = parse_location("https://storage.googleapis.com/b/p/q")
    assert (loc.provider, loc.bucket, loc.prefix) == (Provider.GCS, "b", "p/q")
    key = base64.b64encode(b'{"type": "service_account"}').decode()
    loc = parse_location(f"gs://b/p?AUTH=specified&CREDENTIALS={key}")
    assert loc.credentials.gcs_service_account_json == '{"type": "service_account"}'


def test_file_urls() -> None:
    loc = parse_location("file:///var/backups/pg")
    assert (loc.provider, loc.bucket, loc.prefix) == (Provider.FILE, "/var/backups/pg", "")


@pytest.mark.parametrize(
    ("url", "provider", "message"),
    [
        ("ftp://x/y", None, "unsupported URL scheme"),
        ("s3://", None, "no bucket"),
        ("s3://b/p", "azure-blob-storage", "does not match"),
        ("gs://b/p", "aws-s3", "does not match"),
        ("s3://b/p?NOPE=1", None, "unknown s3:// URL parameter"),
        ("s3://b/p?AWS_ACCESS_KEY_ID=x", None, "must be given together"),
        ("file://relative", None, "name a local path"),
        ("/var/backups", None, "file:///var/backups"),
        ("http://127.0.0.1:10000/onlyaccount", "azure-blob-storage", "ACCOUNT/CONTAINER"),
        ("gs://b/p?CREDENTIALS=!!!", None, "base64"),
        ("s3://[abc/x", None, "invalid destination URL"),
        ("s3://b:99999/p", None, "invalid destination URL"),
        ("s3://b/p?AWS_ENDPOINT=notaurl", None, "AWS_ENDPOINT must be an http"),
        ("azure://c/p?AZURE_ENDPOINT=ftp://h", None, "AZURE_ENDPOINT must be an http"),
        ("azure://ab/p", None, "'ab' is not an Azure container name"),
        ("azure://Backups/p", None, "'Backups' is not an Azure container name"),
        ("https://a.blob.core.windows.net/a--b/p", None, "'a--b' is not an Azure container"),
        ("http://127.0.0.1:1/acct/-ab-/p", "azure-blob-storage", "'-ab-' is not an Azure"),
        (f"azure://{'a' * 64}/p", None, "is not an Azure container name"),
    ],
)
def test_malformed_urls_are_input_errors(url: str, provider: str | None, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_location(url, provider)


@pytest.mark.parametrize("name", ["abc", "a-b-c", "0" * 63, "$root", "$web", "$logs"])
def test_azure_container_names_azure_takes_are_taken(name: str) -> None:
    assert parse_location(f"azure://{name}/p").bucket == name


@pytest.mark.parametrize("url", ["notaurl", "ftp://h", "http://", "http://[::1", "http://h:70000"])
def test_an_endpoint_is_an_http_url_with_a_host(url: str) -> None:
    with pytest.raises(InputError, match="--endpoint-url must be an http"):
        parse_endpoint(url)
    assert parse_endpoint("http://127.0.0.1:9000") == "http://127.0.0.1:9000"
    assert parse_endpoint(None) is None
