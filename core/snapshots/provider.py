"""The one interface every disk snapshot provider implements (EC2, Compute Engine, Azure).

backup, restore and cleanup speak only to this: find the instance, list its attached disks
with their device names, find where one is mounted here, snapshot a disk under a given name
and wait until the snapshots are ready, and delete a snapshot. Each provider module
(core.snapshots.aws, core.snapshots.gcp, core.snapshots.azure) implements it over its official SDK;
core.snapshots.clouds chooses one from the options or from a backup's snapshots_info.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core.errors import OperationFailed
from core.snapshots.mounts import Mount


@dataclass(frozen=True)
class Instance:
    instance_id: str
    root_device: str | None = None  # AWS: the root volume's device, never a backup disk
    paravirtual: bool = False  # AWS: device names renamed /dev/sdX -> /dev/hdX


@dataclass(frozen=True)
class Volume:
    """A disk attached to an instance, as the API describes it."""

    volume_id: str  # what the API knows it by (EBS volume ID; GCE disk name)
    name: str | None  # AWS: its Name tag; GCE: the disk name again
    device: str  # the attachment's device name, as recorded in snapshots_info
    source_snapshot: str | None  # the identifier of the snapshot it was created from
    lun: int | None = None  # Azure: the data disk's LUN
    location: str | None = None  # Azure: the disk's region, where its snapshot goes
    resource_id: str | None = None  # Azure: the managed disk's ID, the snapshot's source


@dataclass(frozen=True)
class Taken:
    """A snapshot just started: the ID to await it by, and its snapshots_info fields."""

    identifier: str
    fields: tuple[tuple[str, Any], ...]


class SnapshotProvider(Protocol):
    kind: str  # snapshots_info's provider: "aws", "gcp", "azure"
    what: str  # "EC2 instance", "GCE instance", "Azure VM": how messages name an instance

    def instance(self, identifier: str) -> Instance: ...

    def attached(self, instance: Instance) -> list[Volume]: ...

    def mount_of(self, volume: Volume, instance: Instance) -> Mount | None: ...

    def create_snapshot(
        self, volume: Volume, name: str, tags: tuple[tuple[str, str], ...]
    ) -> Taken: ...

    def await_ready(
        self, identifiers: list[str], timeout: float, checkpoint: Callable[[], None]
    ) -> None: ...

    def provider_info(self) -> tuple[tuple[str, Any], ...]: ...

    def delete_snapshot(self, identifier: str) -> bool: ...


def match_disk(volumes: list[Volume], disk: str) -> Volume | None:
    """A disk by its API identifier, else by name; two volumes with that name are an error."""
    by_id = [v for v in volumes if v.volume_id == disk]
    matches = by_id or [v for v in volumes if v.name == disk]
    if len(matches) > 1:
        ids = ", ".join(v.volume_id for v in matches)
        raise OperationFailed(f"more than one attached volume is named {disk}: {ids}")
    return matches[0] if matches else None
