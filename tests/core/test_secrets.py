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
