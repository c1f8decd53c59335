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
