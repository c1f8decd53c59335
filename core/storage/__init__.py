"""Object stores: one interface (ObjectStore), four backends, chosen by the location."""

from __future__ import annotations

from core.storage.base import (
    CommonPrefix,
    ObjectInfo,
    ObjectReader,
    ObjectStore,
    ObjectWriter,
    PendingUpload,
    PutOptions,
    StoreConfig,
    validate_tags,
)
from core.urls import Location, Provider


def open_store(location: Location, config: StoreConfig | None = None) -> ObjectStore:
    """Open the backend for a location; SDKs are imported only for the provider in use."""
    config = config or StoreConfig()
    if location.provider is Provider.FILE:
        from core.storage.local import LocalStore

        return LocalStore(location, config)
    if location.provider is Provider.S3:
        from core.storage.s3 import S3Store

        return S3Store(location, config)
    if location.provider is Provider.AZURE:
        from core.storage.azure import AzureStore

        return AzureStore(location, config)
    from core.storage.gcs import GcsStore

    return GcsStore(location, config)


__all__ = [
    "CommonPrefix",
    "ObjectInfo",
    "ObjectReader",
    "ObjectStore",
    "ObjectWriter",
    "PendingUpload",
    "PutOptions",
    "StoreConfig",
    "open_store",
    "validate_tags",
]
