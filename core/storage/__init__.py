"""Object stores: one interface (ObjectStore), five backends, chosen by the location.

objects (entries, write options, tags) and config (StoreConfig) are the vocabulary;
backend is what a provider implements, store the API built on it, writer and readers the
streaming transfers, retry and bandwidth what every request goes through; translate maps
SDK exceptions to core.errors (one table per provider) and clients holds what the SDK
clients share. local, s3, azure, gcs and webdav are the backends.
"""

from __future__ import annotations

from core.storage.config import StoreConfig
from core.storage.objects import (
    CommonPrefix,
    ObjectInfo,
    PendingUpload,
    PutOptions,
    ResumedUpload,
    StoredChunk,
    validate_tags,
)
from core.storage.readers import ObjectReader, PrefetchingReader
from core.storage.store import ObjectStore
from core.storage.writer import ObjectWriter
from core.urls import Location, Provider


def open_store(
    location: Location, config: StoreConfig | None = None, light: bool = False
) -> ObjectStore:
    """Open the backend for a location; SDKs are imported only for the provider in use.

    light: a process that makes a few requests and exits (archive_command) reaches S3 with
    plain keys without importing boto3 (core.storage.s3_http) where it signs as boto3 would.
    """
    config = config or StoreConfig()
    # The light S3 store cannot write under Object Lock: boto3 does.
    if light and location.provider is Provider.S3 and config.object_lock_days is None:
        from core.storage.sigv4 import plain_access

        access = plain_access(location, config)
        if access is not None:
            from core.storage.s3_http import S3HttpStore

            return S3HttpStore(location, config, *access)
    if location.provider is Provider.FILE:
        from core.storage.local import LocalStore

        return LocalStore(location, config)
    if location.provider is Provider.S3:
        from core.storage.s3 import S3Store

        return S3Store(location, config)
    if location.provider is Provider.AZURE:
        from core.storage.azure import AzureStore

        return AzureStore(location, config)
    if location.provider is Provider.WEBDAV:
        from core.storage.webdav import WebDavStore

        return WebDavStore(location, config)
    from core.storage.gcs import GcsStore

    return GcsStore(location, config)


__all__ = [
    "CommonPrefix",
    "ObjectInfo",
    "ObjectReader",
    "ObjectStore",
    "ObjectWriter",
    "PendingUpload",
    "PrefetchingReader",
    "PutOptions",
    "ResumedUpload",
    "StoreConfig",
    "StoredChunk",
    "open_store",
    "validate_tags",
]
