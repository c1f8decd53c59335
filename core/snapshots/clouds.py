"""Which snapshot provider: from a backup's or a recovery's options, or from the
snapshots_info a backup recorded. The SDKs are imported only here, when one is used."""

from __future__ import annotations

from core.errors import InputError
from core.snapshots.info import SnapshotsInfo
from core.snapshots.provider import SnapshotProvider


def open_provider(
    kind: str,
    *,
    region: str | None = None,
    profile: str | None = None,
    project: str | None = None,
    zone: str | None = None,
) -> SnapshotProvider:
    """The provider's client; the SDK is imported only here, when it is used."""
    if kind == "aws":
        from core.snapshots.aws import Ec2

        return Ec2(region, profile)
    if kind == "gcp":
        from core.snapshots.gcp import Gce

        if not project:
            raise InputError("GCP disk snapshots need --gcp-project")
        return Gce(project, zone)
    raise InputError(f"pgvault cannot handle {kind} disk snapshots (aws and gcp only)")


def open_for_backup(info: SnapshotsInfo, zone: str | None = None) -> SnapshotProvider:
    """The provider holding a backup's snapshots, from its snapshots_info."""
    if info.provider == "gcp":
        return open_provider("gcp", project=info.get("project"), zone=zone)
    return open_provider(info.provider, region=info.get("region"))
