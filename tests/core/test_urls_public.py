"""public_url and credential_params: a location without its secrets, and the secrets apart."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.urls import Credentials, credential_params, parse_location, public_url, with_query

URLS = [
    "s3://b/p/q?AWS_REGION=eu-west-1&AWS_ENDPOINT=http://127.0.0.1:9000"
    "&AWS_ACCESS_KEY_ID=AK&AWS_SECRET_ACCESS_KEY=s%2Fe%2Bc&AWS_SESSION_TOKEN=tok%3D",
    "s3://b",
    "gs://b/x?AUTH=specified&CREDENTIALS=eyJhIjoxfQ==",
    "https://storage.googleapis.com/b/x",
    "azure://cont/pre?AZURE_ACCOUNT_NAME=acct&AZURE_ACCOUNT_KEY=k%2B1%3D%3D",
    "azure://cont/pre?AZURE_ACCOUNT_NAME=acct&AZURE_ENDPOINT=https://x.example:443"
    "&AZURE_SAS_TOKEN=sv%3D1%26sig%3Dx",
    "https://acct.blob.core.windows.net/cont/pre",
    "http://127.0.0.1:10000/devstoreaccount1/cont/pre",
    "azure://cont",
    "file:///tmp/x/y",
]


@pytest.mark.parametrize("url", URLS)
def test_round_trips(url: str) -> None:
    location = parse_location(url)
    public = public_url(location)
    for secret in ("s/e+c", "tok=", "k+1==", "sig=x", "eyJhIjoxfQ=="):
        assert secret not in public and secret.replace("=", "%3D") not in public
    expected = replace(
        location,
        credentials=Credentials(),
        auth=None if location.auth == "specified" else location.auth,
    )
    assert parse_location(public) == expected
    assert parse_location(with_query(public, credential_params(location))) == location
