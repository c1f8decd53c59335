"""Azure managed disk snapshots through azure-mgmt-compute, as barman-cloud's
AzureCloudSnapshotInterface.

The VM and its data disks are found by name in one subscription and resource group; a
disk's device is `/dev/disk/azure/scsi1/lun<LUN>` (the Azure Linux agent's symlink, as
barman finds it). Snapshots are incremental copies in the disk's location, named
`<disk>-<backup id lowercased>`, awaited through their long-running operation until
`Succeeded`. A disk restored from a snapshot names it in creationData.sourceResourceId.

The endpoint and credentials are the SDK's (management.azure.com; DefaultAzureCredential,
or --azure-credential). PGVAULT_AZURE_COMPUTE_ENDPOINT points it elsewhere, and
PGVAULT_AZURE_COMPUTE_TOKEN then gives a bearer token to send it (the tests' local server,
over TLS: azure-core sends tokens over https only).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from core.errors import (
    AccessDenied,
    EndpointUnreachable,
    OperationFailed,
    PgvaultError,
)
from core.snapshots.mounts import Mount, mount_of_block
from core.snapshots.provider import Instance, Taken, Volume

ENDPOINT_ENV = "PGVAULT_AZURE_COMPUTE_ENDPOINT"
TOKEN_ENV = "PGVAULT_AZURE_COMPUTE_TOKEN"  # noqa: S105 - the variable's name, not a token
LUN_PREFIX = "/dev/disk/azure/scsi1/lun"
SOURCE_SNAPSHOT = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/snapshots/([^/]+)$",
    re.IGNORECASE,
)
DELETE_TIMEOUT = 600.0


@contextmanager
def _azure(what: str) -> Iterator[None]:
    """azure-core's errors as pgvault's, naming what was being done."""
    import azure.core.exceptions as aexc

    try:
        yield
    except PgvaultError:
        raise
    except aexc.ClientAuthenticationError as exc:
        raise AccessDenied(f"{what}: access denied ({_message(exc)})") from None
    except aexc.ServiceRequestError as exc:
        raise EndpointUnreachable(
            f"{what}: cannot reach the Azure Resource Manager endpoint ({type(exc).__name__})"
        ) from None
    except aexc.HttpResponseError as exc:
        code = exc.error.code if exc.error else exc.status_code
        raise OperationFailed(f"{what}: {code}: {_message(exc)}") from None
    except aexc.AzureError as exc:
        raise OperationFailed(f"{what}: {_message(exc)}") from None


def _message(exc: Any) -> str:
    """ARM's error message alone, on one line (azure-core's adds Code:/Message: lines)."""
    error = getattr(exc, "error", None)
    text = (error.message if error is not None and error.message else None) or str(exc.message)
    return " ".join(text.split())


class _StaticToken:
    """A bearer token given in the environment (azure-core's TokenCredential protocol)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self.token, int(time.time()) + 3600)


def _credential(kind: str | None) -> Any:
    token = os.environ.get(TOKEN_ENV)
    if token:
        return _StaticToken(token)
    from core.storage.azure import identity_credential

    return identity_credential(kind)


class AzureCompute:
    """One subscription's and resource group's Compute API, as a SnapshotProvider."""

    kind = "azure"
    what = "Azure VM"

    def __init__(
        self, subscription_id: str, resource_group: str | None, credential: str | None = None
    ) -> None:
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self._pollers: dict[str, Any] = {}  # snapshot name -> its create operation
        with _azure("connecting to Azure Resource Manager"):
            from azure.mgmt.compute import ComputeManagementClient

            endpoint = os.environ.get(ENDPOINT_ENV)
            extra: dict[str, Any] = {"base_url": endpoint} if endpoint else {}
            self.client: Any = ComputeManagementClient(
                _credential(credential), subscription_id, **extra
            )

    def _where(self) -> str:
        return f"resource group {self.resource_group} of subscription {self.subscription_id}"

    def _vm(self, name: str) -> Any:
        import azure.core.exceptions as aexc

        with _azure(f"looking up Azure VM {name}"):
            try:
                return self.client.virtual_machines.get(self.resource_group, name)
            except aexc.ResourceNotFoundError:
                raise OperationFailed(f"cannot find Azure VM {name} in {self._where()}") from None

    def instance(self, identifier: str) -> Instance:
        self._vm(identifier)
        return Instance(identifier)

    def attached(self, instance: Instance) -> list[Volume]:
        """The VM's data disks (the OS disk never counts, as in barman)."""
        import azure.core.exceptions as aexc

        vm = self._vm(instance.instance_id)
        result = []
        for attachment in vm.storage_profile.data_disks or []:
            with _azure(f"looking up Azure disk {attachment.name}"):
                try:
                    disk = self.client.disks.get(self.resource_group, attachment.name)
                except aexc.ResourceNotFoundError:
                    raise OperationFailed(
                        f"cannot find Azure disk {attachment.name} in {self._where()}"
                    ) from None
            source = None
            creation = disk.creation_data
            if creation is not None and (creation.create_option or "").lower() == "copy":
                match = SOURCE_SNAPSHOT.search(creation.source_resource_id or "")
                source = match.group(1) if match else None
            result.append(
                Volume(
                    volume_id=attachment.name,
                    name=attachment.name,
                    device=f"{LUN_PREFIX}{attachment.lun}",
                    source_snapshot=source,
                    lun=attachment.lun,
                    location=disk.location,
                    resource_id=attachment.managed_disk.id if attachment.managed_disk else None,
                )
            )
        return result

    def mount_of(self, volume: Volume, instance: Instance) -> Mount | None:
        return mount_of_block(volume.device)

    def provider_info(self) -> tuple[tuple[str, Any], ...]:
        return (("subscription_id", self.subscription_id), ("resource_group", self.resource_group))

    def create_snapshot(
        self, volume: Volume, name: str, tags: tuple[tuple[str, str], ...]
    ) -> Taken:
        """Start an incremental snapshot of the disk, tagged with --tags."""
        from azure.mgmt.compute import models

        body = models.Snapshot(
            location=volume.location or "",
            tags=dict(tags),
            properties=models.SnapshotProperties(
                incremental=True,
                creation_data=models.CreationData(
                    create_option="Copy", source_resource_id=volume.resource_id
                ),
            ),
        )
        with _azure(f"creating snapshot {name} of disk {volume.volume_id}"):
            self._pollers[name] = self.client.snapshots.begin_create_or_update(
                self.resource_group, name, body
            )
        fields = (("location", volume.location), ("lun", volume.lun), ("snapshot_name", name))
        return Taken(name, fields)

    def await_ready(
        self, identifiers: list[str], timeout: float, checkpoint: Callable[[], None]
    ) -> None:
        """Wait until each snapshot's operation has succeeded."""
        deadline = time.monotonic() + timeout
        for name in identifiers:
            poller = self._pollers[name]
            with _azure(f"waiting for snapshot {name}"):
                while not poller.done():
                    if time.monotonic() > deadline:
                        raise OperationFailed(
                            f"snapshots not ready after {timeout:.0f} s "
                            f"(--aws-await-snapshots-timeout): {name}"
                        )
                    checkpoint()
                    poller.wait(min(5.0, max(0.1, deadline - time.monotonic())))
                snapshot = poller.result()
            state = (getattr(snapshot, "provisioning_state", None) or "").lower()
            if poller.status().lower() != "succeeded" or state != "succeeded":
                raise OperationFailed(f"snapshot {name} failed ({poller.status()}, {state})")

    def delete_snapshot(self, identifier: str) -> bool:
        """Delete a snapshot and wait for it; False when it was already gone."""
        import azure.core.exceptions as aexc

        with _azure(f"deleting snapshot {identifier}"):
            try:
                self.client.snapshots.get(self.resource_group, identifier)
            except aexc.ResourceNotFoundError:
                return False
            poller = self.client.snapshots.begin_delete(self.resource_group, identifier)
            poller.wait(DELETE_TIMEOUT)
            if poller.status().lower() != "succeeded":
                raise OperationFailed(f"deleting snapshot {identifier}: {poller.status()}")
        return True
