"""The snapshot options of `backup` and `restore`, as frozen values, and their checks.

Only AWS (EBS snapshots through the EC2 API) is built: it is proven against moto's EC2
server. GCP and Azure snapshots (google-cloud-compute, azure-mgmt-compute) are refused with
exit 3: no local server speaks those APIs, so nothing here could prove them.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InputError

DEFAULT_AWAIT_TIMEOUT = 3600  # seconds, barman-cloud's --aws-await-snapshots-timeout
GCP_FLAGS = (
    "snapshot_zone",
    "snapshot_recovery_zone",
    "gcp_zone",
    "snapshot_gcp_project",
    "gcp_project",
)
AZURE_FLAGS = ("azure_subscription_id", "azure_resource_group")
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
    provider: str = "aws"


@dataclass(frozen=True)
class SnapshotRecovery:
    """The instance holding disks created from a snapshot backup's snapshots."""

    instance: str
    region: str | None = None
    profile: str | None = None
    mounts: tuple[tuple[str, str], ...] = ()
    provider: str = "aws"


def refuse_other_providers(flags: dict[str, object]) -> None:
    """GCP, Azure and snapshot locks: refused openly (exit 3), named."""
    for group, what in (
        (GCP_FLAGS, "GCP disk snapshots (google-cloud-compute)"),
        (AZURE_FLAGS, "Azure disk snapshots (azure-mgmt-compute)"),
    ):
        used = [f"--{f.replace('_', '-')}" for f in group if flags.get(f)]
        if used:
            raise InputError(
                f"{', '.join(used)}: {what} are not available in pgvault: no local server "
                "can prove that API; only AWS EBS snapshots are (see README, Snapshot backups)"
            )
    used = [f"--{f.replace('_', '-')}" for f in LOCK_FLAGS if flags.get(f)]
    if used:
        raise InputError(
            f"{', '.join(used)}: EBS snapshot locks are not available in pgvault yet "
            "(moto, the EC2 server it is tested against, has no LockSnapshot)"
        )


def check_source(source: SnapshotSource, compression: str | None) -> None:
    """A snapshot backup's rules, as barman-cloud-backup applies them."""
    if source.provider != "aws":
        raise InputError(f"snapshot provider {source.provider!r} is not supported (aws only)")
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
    if recovery.provider != "aws":
        raise InputError(f"snapshot provider {recovery.provider!r} is not supported (aws only)")
    if tablespaces:
        raise InputError(
            "--tablespace cannot relocate a snapshot backup's tablespaces: they are on its disks"
        )
    if delta:
        raise InputError("--delta/--force do not apply to a snapshot recovery")
