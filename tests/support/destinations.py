"""Fresh, empty destinations on each backend: a bucket/container/directory per test."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field, replace

from core.storage import ObjectStore, StoreConfig, open_store
from core.urls import parse_location
from tests.support.emulators import AZURITE_ACCOUNT, Emulator
from tests.support.postgres import ensure_postgres_user

PROVIDERS = ("file", "s3", "azure", "gcs")
#: every backend the `destination` fixture runs on: the four above and WebDAV (nginx)
STORE_PROVIDERS = (*PROVIDERS, "http")


@dataclass
class TestDestination:
    """A destination URL plus what pgvault's command line and SDK clients need to use it."""

    __test__ = False

    provider: str
    url: str
    bucket: str
    config: StoreConfig
    cli_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cleanup_dir: str | None = None
    #: open_store(light=True): S3 through core.storage.s3_http, as archive_command does
    light: bool = False

    def store(self, **overrides: object) -> ObjectStore:
        config = replace(self.config, **overrides) if overrides else self.config  # type: ignore[arg-type]
        return open_store(parse_location(self.url), config, light=self.light)

    def with_prefix(self, prefix: str) -> TestDestination:
        return replace(self, url=f"{self.url.rstrip('/')}/{prefix}")

    def drop(self) -> None:
        if self.cleanup_dir:
            shutil.rmtree(self.cleanup_dir, ignore_errors=True)


def _name(kind: str) -> str:
    return f"pgv-{kind}-{uuid.uuid4().hex[:12]}"


def make_destination(
    provider: str,
    emulators: dict[str, Emulator],
    prefix: str = "pfx",
    create: bool = True,
    object_lock: bool = False,
) -> TestDestination:
    """A new empty bucket (or directory) on the given backend, world-readable for postgres;
    object_lock: an S3 bucket created with Object Lock enabled (and so versioned)."""
    if provider == "file":
        root = tempfile.mkdtemp(prefix="pgvault-dest-", dir="/tmp")
        os.chmod(root, 0o777)
        if os.geteuid() == 0:
            # Owned by postgres, as an operator's destination is: a backup run as root then
            # writes what archive_command (as postgres) can write beside, whoever comes first.
            pw = ensure_postgres_user()
            os.chown(root, pw.pw_uid, pw.pw_gid)
        if not create:
            # A directory can always be created, unless its parent is a regular file.
            open(os.path.join(root, "file"), "w").close()
            root = os.path.join(root, "file", "dir")
        return TestDestination(
            "file",
            f"file://{root}/{prefix}" if prefix else f"file://{root}",
            root,
            StoreConfig(),
            cleanup_dir=root,
        )
    if provider == "s3":
        moto = emulators["s3"]
        bucket = _name("s3")
        if create:
            import boto3

            client = boto3.client(
                "s3",
                endpoint_url=moto.endpoint,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            with contextlib.closing(client):
                client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=object_lock)
        return TestDestination(
            "s3",
            f"s3://{bucket}/{prefix}",
            bucket,
            StoreConfig(endpoint_url=moto.endpoint),
            cli_args=["--endpoint-url", moto.endpoint],
            env=dict(moto.env),
        )
    if provider == "azure":
        azurite = emulators["azure"]
        container = _name("az")
        if create:
            from azure.storage.blob import BlobServiceClient

            # closed: a dropped SDK client keeps its socket until a full garbage collection
            with BlobServiceClient.from_connection_string(
                azurite.env["AZURE_STORAGE_CONNECTION_STRING"]
            ) as service:
                service.create_container(container)
        url = f"{azurite.endpoint}/{AZURITE_ACCOUNT}/{container}/{prefix}"
        return TestDestination(
            "azure",
            url,
            container,
            StoreConfig(),
            cli_args=["--cloud-provider", "azure-blob-storage"],
            env=dict(azurite.env),
        )
    if provider == "gcs":
        gcs = emulators["gcs"]
        bucket = _name("gcs")
        if create:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            client = storage.Client(project="pgvault", credentials=AnonymousCredentials())
            with contextlib.closing(client):
                client.create_bucket(bucket)
        return TestDestination(
            "gcs", f"gs://{bucket}/{prefix}", bucket, StoreConfig(), env=dict(gcs.env)
        )
    if provider == "http":
        return _dav_destination(emulators["http"], prefix, create)
    if provider == "wsgidav":  # the same backend on another server (the store contract)
        return _dav_destination(emulators["wsgidav"], prefix, create)
    raise ValueError(provider)


def _dav_destination(nginx: Emulator, prefix: str, create: bool) -> TestDestination:
    """A new collection on the test nginx (tests.support.webdav_server)."""
    import urllib.request

    collection = _name("dav")
    if create:
        url = f"http://127.0.0.1:{nginx.port}/{collection}/"
        with urllib.request.urlopen(urllib.request.Request(url, method="MKCOL"), timeout=10):
            pass
    tail = f"/{prefix}" if prefix else ""
    return TestDestination(
        "http",
        f"dav://127.0.0.1:{nginx.port}/{collection}{tail}",
        collection,
        StoreConfig(),
        cleanup_dir=str(nginx.workdir / "root" / collection),
    )
