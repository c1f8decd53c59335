"""GCP persistent disk snapshots through google-cloud-compute (REST), as barman-cloud's
GcpCloudSnapshotInterface.

The instance and its disks are found by name in one project and zone; a disk's device is
`/dev/disk/by-id/google-<device name>` (barman's DEVICE_PREFIX). Snapshots are global to the
project, named `<disk>-<backup id lowercased>`, and awaited until their operation is DONE
and their status READY.

The endpoint is the SDK's (compute.googleapis.com, credentials from Application Default
Credentials: GOOGLE_APPLICATION_CREDENTIALS). PGVAULT_GCP_COMPUTE_ENDPOINT points it
elsewhere; a plain-http endpoint gets anonymous credentials (a token must not travel in
clear), which is how the tests reach their local server.

The operations are polled with pgvault's own GlobalOperationsClient on the same endpoint:
the SDK's ExtendedOperation.result() polls through a client it builds itself, on the
default endpoint whatever client_options say.
"""

from __future__ import annotations

import os
import posixpath
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

from core.errors import (
    AccessDenied,
    EndpointUnreachable,
    OperationFailed,
    PgvaultError,
)
from core.snapshots.mounts import Mount, mount_of_block
from core.snapshots.provider import Instance, Taken, Volume

ENDPOINT_ENV = "PGVAULT_GCP_COMPUTE_ENDPOINT"
DEVICE_PREFIX = "/dev/disk/by-id/google-"
MAX_POLL = 15.0  # seconds between polls
DELETE_TIMEOUT = 600.0  # seconds a snapshot deletion may take


@contextmanager
def _gcp(what: str) -> Iterator[None]:
    """google-api-core's errors as pgvault's, naming what was being done."""
    import google.api_core.exceptions as gexc
    import google.auth.exceptions as aexc
    import requests

    try:
        yield
    except PgvaultError:
        raise
    except (gexc.Forbidden, gexc.Unauthorized, gexc.PermissionDenied) as exc:
        raise AccessDenied(f"{what}: access denied ({exc.message})") from None
    except gexc.GoogleAPICallError as exc:
        raise OperationFailed(f"{what}: {exc.code}: {exc.message}") from None
    except aexc.DefaultCredentialsError:
        raise AccessDenied(
            f"{what}: no GCP credentials found (set GOOGLE_APPLICATION_CREDENTIALS)"
        ) from None
    except aexc.GoogleAuthError as exc:
        raise AccessDenied(f"{what}: GCP authentication failed ({exc})") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise EndpointUnreachable(
            f"{what}: cannot reach the Compute Engine endpoint ({type(exc).__name__})"
        ) from None


def _last(link: str | None) -> str:
    """A resource's short name from its URL or partial path."""
    return posixpath.split(urlparse(link or "").path)[-1]


class Gce:
    """One project's Compute Engine API, in one zone, as a SnapshotProvider."""

    kind = "gcp"
    what = "GCE instance"

    def __init__(self, project: str, zone: str | None) -> None:
        self.project = project
        self.zone = zone
        self._operations: dict[str, str] = {}  # snapshot name -> its insert operation
        with _gcp("connecting to Compute Engine"):
            from google.api_core.client_options import ClientOptions
            from google.auth.credentials import AnonymousCredentials, Credentials
            from google.cloud import compute_v1

            endpoint = os.environ.get(ENDPOINT_ENV)
            options = ClientOptions(api_endpoint=endpoint) if endpoint else None
            credentials: Credentials | None = None
            if endpoint and endpoint.startswith("http://"):
                credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]

            def client(cls: Any) -> Any:
                return cls(credentials=credentials, client_options=options, transport="rest")

            self.instances: Any = client(compute_v1.InstancesClient)
            self.disks: Any = client(compute_v1.DisksClient)
            self.snapshots: Any = client(compute_v1.SnapshotsClient)
            self.operations: Any = client(compute_v1.GlobalOperationsClient)

    def instance(self, identifier: str) -> Instance:
        """The instance by name; OperationFailed (exit 1) naming it, its zone and project."""
        import google.api_core.exceptions as gexc

        with _gcp(f"looking up GCE instance {identifier}"):
            try:
                self.instances.get(project=self.project, zone=self.zone, instance=identifier)
            except gexc.NotFound:
                raise OperationFailed(
                    f"cannot find GCE instance {identifier} in zone {self.zone} of project "
                    f"{self.project}"
                ) from None
        return Instance(identifier)

    def attached(self, instance: Instance) -> list[Volume]:
        """Every disk attached to the instance (barman counts the boot disk too)."""
        with _gcp(f"listing the disks of GCE instance {instance.instance_id}"):
            meta = self.instances.get(
                project=self.project, zone=self.zone, instance=instance.instance_id
            )
            result = []
            for attachment in meta.disks:
                name = _last(attachment.source)
                if not name:
                    raise OperationFailed(
                        f"cannot read the disk name of {attachment.source!r} attached to "
                        f"GCE instance {instance.instance_id}"
                    )
                disk = self.disks.get(project=self.project, zone=self.zone, disk=name)
                result.append(
                    Volume(
                        volume_id=name,
                        name=name,
                        device=attachment.device_name,
                        source_snapshot=_last(disk.source_snapshot) or None,
                    )
                )
        return result

    def mount_of(self, volume: Volume, instance: Instance) -> Mount | None:
        return mount_of_block(DEVICE_PREFIX + volume.device)

    def provider_info(self) -> tuple[tuple[str, Any], ...]:
        return (("project", self.project),)

    def create_snapshot(
        self, volume: Volume, name: str, tags: tuple[tuple[str, str], ...]
    ) -> Taken:
        """Start a snapshot of the disk; --tags go to the uploaded objects, as barman's."""
        from google.cloud import compute_v1

        source = f"projects/{self.project}/zones/{self.zone}/disks/{volume.volume_id}"
        with _gcp(f"creating snapshot {name} of disk {volume.volume_id}"):
            operation = self.snapshots.insert_unary(
                project=self.project,
                snapshot_resource=compute_v1.Snapshot(name=name, source_disk=source),
            )
        _raise_for(operation, f"snapshot {name} of disk {volume.volume_id}")
        self._operations[name] = operation.name
        fields = (
            ("device_name", volume.device),
            ("snapshot_name", name),
            ("snapshot_project", self.project),
        )
        return Taken(name, fields)

    def await_ready(
        self, identifiers: list[str], timeout: float, checkpoint: Callable[[], None]
    ) -> None:
        """Wait until each snapshot's operation is DONE and the snapshot READY."""
        deadline = time.monotonic() + timeout
        delay = 0.5
        pending = list(identifiers)
        while True:
            pending = [name for name in pending if not self._ready(name)]
            if not pending:
                return
            if time.monotonic() + delay > deadline:
                raise OperationFailed(
                    f"snapshots not ready after {timeout:.0f} s "
                    f"(--aws-await-snapshots-timeout): {', '.join(pending)}"
                )
            checkpoint()
            time.sleep(delay)
            delay = min(MAX_POLL, delay * 2)

    def _ready(self, name: str) -> bool:
        from google.cloud import compute_v1

        operation_name = self._operations.get(name)
        with _gcp(f"waiting for snapshot {name}"):
            if operation_name:
                operation = self.operations.get(project=self.project, operation=operation_name)
                if operation.status != compute_v1.Operation.Status.DONE:
                    return False
                _raise_for(operation, f"snapshot {name}")
            status = self.snapshots.get(project=self.project, snapshot=name).status
        if status == "FAILED":  # a string field in compute/v1, not an enum
            raise OperationFailed(f"snapshot {name} failed (status FAILED)")
        return bool(status == "READY")

    def delete_snapshot(self, identifier: str) -> bool:
        """Delete a snapshot and wait for it; False when it was already gone."""
        import google.api_core.exceptions as gexc
        from google.cloud import compute_v1

        with _gcp(f"deleting snapshot {identifier}"):
            try:
                operation = self.snapshots.delete_unary(project=self.project, snapshot=identifier)
            except gexc.NotFound:
                return False
            deadline = time.monotonic() + DELETE_TIMEOUT
            delay = 0.2
            while operation.status != compute_v1.Operation.Status.DONE:
                if time.monotonic() > deadline:
                    raise OperationFailed(f"deleting snapshot {identifier}: not done in time")
                time.sleep(delay)
                delay = min(MAX_POLL, delay * 2)
                operation = self.operations.get(project=self.project, operation=operation.name)
        _raise_for(operation, f"deleting snapshot {identifier}")
        return True


def _raise_for(operation: Any, what: str) -> None:
    """An operation's errors (barman: error_code, error_message) as OperationFailed."""
    errors = list(operation.error.errors) if "error" in operation else []
    if errors:
        detail = "; ".join(f"{e.code}: {e.message}" for e in errors)
        raise OperationFailed(f"{what} failed: {detail}")
