"""dav:// and davs:// destination URLs: WebDAV over http and https, basic-auth credentials."""

from dataclasses import replace

import pytest

from core.errors import InputError
from core.secrets import redact, without_query
from core.urls import (
    Credentials,
    Provider,
    credential_params,
    parse_location,
    public_url,
    with_query,
)


def test_dav_url_names_server_collection_and_prefix() -> None:
    loc = parse_location("dav://127.0.0.1:8080/backups/pg/main")
    assert (loc.provider, loc.bucket, loc.prefix) == (Provider.WEBDAV, "backups", "pg/main")
    assert loc.endpoint == "http://127.0.0.1:8080"
    assert loc.display() == "dav://127.0.0.1:8080/backups/pg/main"
    assert parse_location("davs://dav.example.com/b").endpoint == "https://dav.example.com"


def test_http_urls_are_webdav_only_when_the_provider_says_so() -> None:
    url = "https://u:pw-123456@127.0.0.1:8443/dav/pg"
    loc = parse_location(url, cloud_provider="webdav")
    assert (loc.provider, loc.bucket, loc.prefix) == (Provider.WEBDAV, "dav", "pg")
    assert loc.endpoint == "https://127.0.0.1:8443" and loc.credentials.dav_user == "u"
    assert public_url(loc) == "davs://127.0.0.1:8443/dav/pg"  # what pgvault writes down
    assert parse_location("http://127.0.0.1:8080/acct/ctr/pg").provider is Provider.AZURE
    with pytest.raises(InputError, match="does not match"):
        parse_location("dav://h/c/p", cloud_provider="aws-s3")


def test_userinfo_password_is_a_secret_and_never_shown() -> None:
    url = "dav://alice:Pa%3Ass-w0rd-XYZ@127.0.0.1:8080/backups/pg"
    loc = parse_location(url)
    assert (loc.credentials.dav_user, loc.credentials.dav_password) == ("alice", "Pa:ss-w0rd-XYZ")
    assert "w0rd" not in loc.display() + repr(loc) + public_url(loc)
    assert "w0rd" not in redact("failed: Pa:ss-w0rd-XYZ")
    assert without_query(url) == "dav://alice@127.0.0.1:8080/backups/pg"


def test_credentials_go_to_the_query_string_and_come_back() -> None:
    loc = parse_location("dav://bob:s3cret-pass-1@h:1/c/p")
    params = credential_params(loc)
    assert params == {"DAV_USER": "bob", "DAV_PASSWORD": "s3cret-pass-1"}
    again = parse_location(with_query(public_url(loc), params))
    assert again == loc
    # restore_command's URL names no user (the credentials file does); a job record keeps
    # it, no secret, so that a resumed job authenticates with the password alone
    assert parse_location(public_url(loc)) == replace(loc, credentials=Credentials())
    assert loc.without_credentials().credentials == Credentials(dav_user="bob")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("dav://127.0.0.1:8080", "no bucket or container"),
        ("dav:///c/p", "no host"),
        ("dav://h/c?AWS_REGION=x", "unknown dav:// URL parameter"),
        ("dav://u:topsecret-77@h:99999/c", "invalid destination URL"),
        # basic-auth credentials on an http(s) URL without --cloud-provider webdav: was read
        # as an Azure emulator, the user dropped, ending in an Azure credential error
        ("http://u:topsecret-77@127.0.0.1:8080/c/p", "add --cloud-provider webdav"),
        ("https://u@dav.example.com/c/p", "write it dav:// (davs:// for https)"),
        ("http://127.0.0.1:8080/c/p?DAV_PASSWORD=topsecret-77", "carries WebDAV credentials"),
    ],
)
def test_bad_dav_urls_are_input_errors_without_the_password(url: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_location(url)
    assert message in str(caught.value)
    assert "topsecret" not in str(caught.value)
