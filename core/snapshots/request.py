"""The snapshot options of `backup` and `restore`, as frozen values, and their checks.

AWS (EBS snapshots through the EC2 API, proven against moto's EC2 server) and GCP
(persistent disk snapshots through google-cloud-compute) and Azure (managed disk snapshots
through azure-mgmt-compute) are built, the last two proven against local servers that speak
the REST subset their SDK calls (tests/support/gce.py, tests/support/arm.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InputError

DEFAULT_AWAIT_TIMEOUT = 3600  # seconds, barman-cloud's --aws-await-snapshots-timeout
LOCK_FLAGS = (
    "aws_snapshot_lock_mode",
    "aws_snapshot_lock_cool_off_period",
    "aws_snapshot_lock_expiration_date",
    "aws_snapshot_lock_duration",
)


@dataclass(frozen=True)
class SnapshotSource:
    """Take EBS snapshots of these disks of this instance (an ID or a Name tag each)."""

    instance: str
    disks: tuple[str, ...]
    region: str | None = None
    profile: str | None = None
    await_timeout: int = DEFAULT_AWAIT_TIMEOUT
    mounts: tuple[tuple[str, str], ...] = ()  # --snapshot-mount DISK=PATH overrides
    gcp_project: str | None = None
    gcp_zone: str | None = None
    azure_subscription_id: str | None = None
    azure_resource_group: str | None = None
    azure_credential: str | None = None

    @property
    def provider(self) -> str:
        """GCP or Azure when one of its options is given, else AWS (barman takes it from
        --cloud-provider; pgvault's destination may be on another cloud than its disks)."""
        if self.azure_subscription_id or self.azure_resource_group:
            return "azure"
        return "gcp" if self.gcp_project or self.gcp_zone else "aws"


@dataclass(frozen=True)
class SnapshotRecovery:
    """The instance holding disks created from a snapshot backup's snapshots."""

    instance: str
    region: str | None = None
    profile: str | None = None
    mounts: tuple[tuple[str, str], ...] = ()
    gcp_zone: str | None = None  # the zone of a GCP recovery instance
    azure_resource_group: str | None = None  # the resource group of an Azure recovery VM
    azure_credential: str | None = None


def refuse_other_providers(flags: dict[str, object]) -> None:
    """Snapshot locks: refused openly (exit 3), named."""
    used = [f"--{f.replace('_', '-')}" for f in LOCK_FLAGS if flags.get(f)]
    if used:
        raise InputError(
            f"{', '.join(used)}: EBS snapshot locks are not available in pgvault yet "
            "(moto, the EC2 server it is tested against, has no LockSnapshot)"
        )


def _check_cloud(source: SnapshotSource) -> None:
    """The options of the cloud the disks are on: all it needs, none of another's."""
    if source.provider == "gcp":
        if source.region:
            raise InputError(
                "--aws-region and --gcp-project/--gcp-zone name two clouds: "
                "a snapshot backup's disks are on one"
            )
        if not source.gcp_project or not source.gcp_zone:
            raise InputError(
                "GCP disk snapshots need both --gcp-project and --gcp-zone "
                "(the project of the instance, disks and snapshots, and their zone)"
            )
    if source.provider == "azure":
        if source.region or source.gcp_project or source.gcp_zone:
            raise InputError(
                "--azure-subscription-id/--azure-resource-group and the AWS or GCP options "
                "name two clouds: a snapshot backup's disks are on one"
            )
        if not source.azure_subscription_id or not source.azure_resource_group:
            raise InputError(
                "Azure disk snapshots need both --azure-subscription-id and "
                "--azure-resource-group (where the VM, its disks and the snapshots are)"
            )


def check_source(source: SnapshotSource, compression: str | None) -> None:
    """A snapshot backup's rules, as barman-cloud-backup applies them."""
    _check_cloud(source)
    if compression:
        raise InputError("compression options cannot be used with snapshot backups")
    if not source.instance:
        raise InputError("--snapshot-disk needs --snapshot-instance (the instance they attach to)")
    if not source.disks:
        raise InputError("--snapshot-instance needs at least one --snapshot-disk")
    if len(set(source.disks)) != len(source.disks):
        raise InputError("a disk is named twice with --snapshot-disk")
    if source.await_timeout < 1:
        raise InputError("--aws-await-snapshots-timeout must be a positive number of seconds")
    unknown = sorted({d for d, _ in source.mounts} - set(source.disks))
    if unknown:
        raise InputError(f"--snapshot-mount names {', '.join(unknown)}, not a --snapshot-disk")


def check_recovery(
    recovery: SnapshotRecovery, tablespaces: tuple[tuple[str, str], ...], delta: bool
) -> None:
    """What a snapshot recovery cannot be combined with (exit 3)."""
    if (
        sum(bool(x) for x in (recovery.region, recovery.gcp_zone, recovery.azure_resource_group))
        > 1
    ):
        raise InputError(
            "--aws-region, --gcp-zone and --azure-resource-group name different clouds: "
            "a recovery instance is on one"
        )
    if tablespaces:
        raise InputError(
            "--tablespace cannot relocate a snapshot backup's tablespaces: they are on its disks"
        )
    if delta:
        raise InputError("--delta/--force do not apply to a snapshot recovery")
