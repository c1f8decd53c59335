"""An SDK's own refusal of its configuration is pgvault's error, never an unexpected one.

botocore refuses a malformed region with a ValidationError, azure-storage-blob a token
credential over http with a ValueError: both escaped as exit 4. Each store raises its
error when it is opened, before any request (nothing listens on the endpoints here).
"""

from __future__ import annotations

import pytest

from core.errors import AccessDenied, InputError
from core.storage import StoreConfig, open_store
from core.urls import parse_location
from tests.support.emulators import free_port


def test_a_malformed_aws_region_is_bad_input() -> None:
    url = f"s3://b/p?AWS_REGION=bad%20region&AWS_ENDPOINT=http://127.0.0.1:{free_port()}"
    with pytest.raises(InputError, match="AWS region 'bad region' is not a region name"):
        open_store(parse_location(url), StoreConfig())


@pytest.mark.parametrize("credential", [None, "default"])
def test_an_http_azure_endpoint_without_a_key_is_refused_credentials(
    credential: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    url = f"http://127.0.0.1:{free_port()}/devstoreaccount1/ctr/p"
    with pytest.raises(AccessDenied, match="no credentials for Azure account devstoreaccount1"):
        open_store(parse_location(url), StoreConfig(azure_credential=credential))
