"""Secrets never reach messages: registered values and secret-looking pairs are masked."""

import logging

from core.errors import StorageError
from core.secrets import RedactingFilter, redact, register_secret


def test_registered_secret_is_masked_everywhere() -> None:
    register_secret("s3cr3t-value-123")
    assert "s3cr3t" not in redact("failed with key s3cr3t-value-123 in it")
    assert "s3cr3t" not in str(StorageError("boom s3cr3t-value-123"))


def test_connection_strings_conninfo_and_urls() -> None:
    text = (
        "AccountName=dev;AccountKey=abcDEF==;BlobEndpoint=x host=db password=hunter2 "
        "postgresql://app:pw0rd@db/x s3://b/p?AWS_SECRET_ACCESS_KEY=zzz&AWS_ACCESS_KEY_ID=id "
        "https://a.blob.core.windows.net/c?sv=2020&sig=SIGNATURE"
    )
    out = redact(text)
    for secret in ("abcDEF", "hunter2", "pw0rd", "zzz", "SIGNATURE"):
        assert secret not in out
    assert "AccountName=dev" in out and "AWS_ACCESS_KEY_ID=id" in out


def test_logging_filter_redacts_rendered_messages(caplog: object) -> None:
    logger = logging.getLogger("pgvault.test.redact")
    logger.addFilter(RedactingFilter())
    import pytest

    assert isinstance(caplog, pytest.LogCaptureFixture)
    with caplog.at_level(logging.INFO, logger="pgvault.test.redact"):
        logger.info("connecting with %s", "password=letmein")
    assert "letmein" not in caplog.text


def test_a_kept_url_or_location_carries_no_credentials() -> None:
    from core.secrets import without_query
    from core.urls import parse_location

    url = "s3://bucket/pfx?AWS_ACCESS_KEY_ID=id&AWS_SECRET_ACCESS_KEY=never-kept-anywhere"
    assert without_query(url) == "s3://bucket/pfx"
    location = parse_location(url)
    public = location.without_credentials()
    assert public.credentials.is_empty() and not location.credentials.is_empty()
    assert (public.bucket, public.prefix, public.display()) == ("bucket", "pfx", location.display())


def test_a_child_process_masks_the_secrets_of_a_location_it_was_handed() -> None:
    import subprocess
    import sys

    probe = (
        "from core.urls import Credentials\n"
        "from core.secrets import redact\n"
        "Credentials(azure_account_key='handed-over-key-42').register()\n"
        "print(redact('key handed-over-key-42 here'))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "key *** here", done.stderr


def test_botocore_debug_header_form_is_masked() -> None:
    # What `-vv` printed: botocore logs the prepared request's headers as a dict of bytes.
    line = (
        "Sending http request: <AWSPreparedRequest method=GET, headers={'X-Amz-Date': "
        "b'20261203T000000Z', 'X-Amz-Security-Token': b'IQoJb3JpZ2luX2VjEtokenvalue', "
        "'Authorization': b'AWS4-HMAC-SHA256 Credential=AKID/x, Signature=abcdef0123'}>"
    )
    out = redact(line)
    assert "IQoJb3JpZ2luX2VjEtokenvalue" not in out and "Signature=abcdef0123" not in out
    assert "X-Amz-Date': b'20261203T000000Z'" in out
    assert redact('{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIE"}').count("MIIE") == 0


def test_encoded_forms_and_inner_pairs_of_a_registered_secret_are_masked() -> None:
    register_secret("tok/en+with=special&chars-31")
    out = redact("GET /b/k?X-Amz-Security-Token=tok%2Fen%2Bwith%3Dspecial%26chars-31 HTTP/1.1")
    assert "special" not in out, out
    register_secret("DefaultEndpointsProtocol=http;AccountName=dev;AccountKey=QUJDREVGR0g=")
    assert redact("signing with QUJDREVGR0g= now") == "signing with *** now"
    register_secret("sv=2022-11-02&ss=b&sig=c2lnbmF0dXJlLXZhbHVl")
    assert "c2lnbmF0dXJlLXZhbHVl" not in redact("sig c2lnbmF0dXJlLXZhbHVl")


def test_the_secrets_of_the_environment_are_registered_at_the_edge() -> None:
    import subprocess
    import sys

    probe = (
        "from core.secrets import redact, register_environment_secrets\n"
        "register_environment_secrets()\n"
        "print(redact('a session-token-canary-77 and azure-key-canary-88 and keep-this'))"
    )
    env = {
        "AWS_SESSION_TOKEN": "session-token-canary-77",
        "AZURE_STORAGE_KEY": "azure-key-canary-88",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "a *** and *** and keep-this", done.stderr
