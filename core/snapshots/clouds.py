"""Which snapshot provider: from a backup's or a recovery's options, or from the
snapshots_info a backup recorded. The SDKs are imported only here, when one is used."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InputError
from core.snapshots.info import SnapshotsInfo
from core.snapshots.provider import SnapshotProvider


@dataclass(frozen=True)
class Account:
    """Where a provider's resources are: the options of the cloud they are on."""

    region: str | None = None  # AWS
    profile: str | None = None
    project: str | None = None  # GCP
    zone: str | None = None
    subscription_id: str | None = None  # Azure
    resource_group: str | None = None
    credential: str | None = None


def open_provider(kind: str, account: Account) -> SnapshotProvider:
    """The provider's client; the SDK is imported only here, when it is used."""
    if kind == "aws":
        from core.snapshots.aws import Ec2

        return Ec2(account.region, account.profile)
    if kind == "gcp":
        from core.snapshots.gcp import Gce

        if not account.project:
            raise InputError("GCP disk snapshots need --gcp-project")
        return Gce(account.project, account.zone)
    if kind == "azure":
        from core.snapshots.azure import AzureCompute

        if not account.subscription_id:
            raise InputError("Azure disk snapshots need --azure-subscription-id")
        return AzureCompute(account.subscription_id, account.resource_group, account.credential)
    raise InputError(f"pgvault cannot handle {kind} disk snapshots (aws, gcp and azure only)")


def open_for_backup(info: SnapshotsInfo) -> SnapshotProvider:
    """The provider holding a backup's snapshots, from its snapshots_info."""
    account = Account(
        region=info.get("region"),
        project=info.get("project"),
        subscription_id=info.get("subscription_id"),
        resource_group=info.get("resource_group"),
    )
    return open_provider(info.provider, account)
