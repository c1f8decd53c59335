"""The snapshot flags of `backup` and `restore` (barman-cloud's), parsed into core values.

AWS, GCP and Azure are built (core.snapshots). `--snapshot-mount DISK=PATH` is pgvault's own:
where a disk is mounted when the cloud's device name does not lead to it on this host.
"""

from __future__ import annotations

import argparse

from core.errors import InputError
from core.snapshots.mounts import parse_overrides
from core.snapshots.request import (
    DEFAULT_AWAIT_TIMEOUT,
    SnapshotRecovery,
    SnapshotSource,
    refuse_other_providers,
)
from tui.batch.options import positive_int

_MOUNT_HELP = (
    "where disk DISK (as named, or its volume ID) is mounted on this host, when the cloud's "
    "device name does not find it with findmnt (repeatable)"
)


def _add_provider_flags(group: argparse._ArgumentGroup, recovery: bool) -> None:
    zone = "--snapshot-recovery-zone" if recovery else "--snapshot-zone"
    group.add_argument(zone, help="deprecated: --gcp-zone")
    group.add_argument("--gcp-zone", help="GCP zone of the instance and its disks")
    if not recovery:
        group.add_argument("--snapshot-gcp-project", help="deprecated: --gcp-project")
        group.add_argument(
            "--gcp-project", help="GCP project of the instance, its disks and the snapshots"
        )
        group.add_argument(
            "--azure-subscription-id", help="Azure subscription of the VM and its disks"
        )
    group.add_argument("--azure-resource-group", help="Azure resource group of the VM and disks")
    group.add_argument("--aws-region", help="AWS region of the instance and disks")
    group.add_argument("--snapshot-mount", action="append", metavar="DISK=PATH", help=_MOUNT_HELP)


def add_snapshot_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "Snapshot backups (AWS EBS, GCP persistent disks, Azure managed disks)"
    )
    group.add_argument("--snapshot-instance", help="instance the disks to snapshot are attached to")
    group.add_argument(
        "--snapshot-disk",
        action="append",
        metavar="NAME",
        help="a disk to snapshot: EBS volume ID or Name tag, GCP disk name (repeatable)",
    )
    _add_provider_flags(group, recovery=False)
    group.add_argument(
        "--aws-await-snapshots-timeout",
        type=positive_int,
        default=DEFAULT_AWAIT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for the snapshots to complete (default: {DEFAULT_AWAIT_TIMEOUT})",
    )
    group.add_argument(
        "--aws-snapshot-lock-mode",
        choices=("governance", "compliance"),
        help="not supported yet (refused)",
    )
    group.add_argument("--aws-snapshot-lock-cool-off-period", help="not supported yet")
    group.add_argument("--aws-snapshot-lock-expiration-date", help="not supported yet")
    group.add_argument("--aws-snapshot-lock-duration", help="not supported yet")


def add_recovery_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Snapshot recovery (AWS EBS, GCP and Azure disks)")
    group.add_argument(
        "--snapshot-recovery-instance",
        help="instance the disks created from the backup's snapshots are attached to",
    )
    _add_provider_flags(group, recovery=True)


def _one(args: argparse.Namespace, new: str, old: str) -> str | None:
    """A flag given by its name or its deprecated one (barman's same dest); not both apart."""
    flags = vars(args)
    value, deprecated = flags.get(new), flags.get(old)
    if value and deprecated and value != deprecated:
        raise InputError(
            f"--{new.replace('_', '-')} {value} and --{old.replace('_', '-')} {deprecated} "
            "disagree (the second is the first's deprecated name)"
        )
    return value or deprecated


_BACKUP_ONLY = (
    *("aws_region", "snapshot_mount"),
    *("gcp_project", "snapshot_gcp_project", "gcp_zone", "snapshot_zone"),
    *("azure_subscription_id", "azure_resource_group"),
)


def snapshot_source(args: argparse.Namespace) -> SnapshotSource | None:
    """The snapshot backup asked for, or None; exit 3 for what cannot be taken."""
    flags = vars(args)
    if not (args.snapshot_instance or args.snapshot_disk):
        given = [f for f in _BACKUP_ONLY if flags.get(f)]
        refuse_other_providers(flags)
        if given:
            raise InputError(
                f"--{given[0].replace('_', '-')} is for snapshot backups "
                "(--snapshot-instance, --snapshot-disk)"
            )
        return None
    refuse_other_providers(flags)
    return SnapshotSource(
        instance=args.snapshot_instance or "",
        disks=tuple(args.snapshot_disk or ()),
        region=args.aws_region,
        profile=args.aws_profile,
        await_timeout=args.aws_await_snapshots_timeout,
        mounts=parse_overrides(args.snapshot_mount),
        gcp_project=_one(args, "gcp_project", "snapshot_gcp_project"),
        gcp_zone=_one(args, "gcp_zone", "snapshot_zone"),
        azure_subscription_id=args.azure_subscription_id,
        azure_resource_group=args.azure_resource_group,
        azure_credential=args.azure_credential,
    )


def validate_snapshot_flags(args: argparse.Namespace) -> None:
    """What a snapshot backup cannot be combined with (barman's rules, then pgvault's)."""
    import os

    if os.environ.get("BARMAN_HOOK"):
        raise InputError("a Barman hook uploads Barman's backup: no snapshot options")
    if args.database or args.table or args.all_databases:
        raise InputError("a logical backup (--database, --table) takes no snapshot options")
    if args.compression:
        raise InputError("compression options cannot be used with snapshot backups")
    if args.incremental or args.incremental_from or args.differential:
        raise InputError("a snapshot backup is always full: no --incremental/--differential")


def snapshot_recovery(args: argparse.Namespace) -> SnapshotRecovery | None:
    """The snapshot recovery asked for, or None."""
    flags = vars(args)
    refuse_other_providers(flags)
    if not args.snapshot_recovery_instance:
        given = [
            f
            for f in (
                *("aws_region", "snapshot_mount", "gcp_zone", "snapshot_recovery_zone"),
                "azure_resource_group",
            )
            if flags.get(f)
        ]
        if given:
            raise InputError(
                f"--{given[0].replace('_', '-')} is for snapshot recovery "
                "(--snapshot-recovery-instance)"
            )
        return None
    return SnapshotRecovery(
        instance=args.snapshot_recovery_instance,
        region=args.aws_region,
        profile=args.aws_profile,
        mounts=parse_overrides(args.snapshot_mount),
        gcp_zone=_one(args, "gcp_zone", "snapshot_recovery_zone"),
        azure_resource_group=args.azure_resource_group,
        azure_credential=args.azure_credential,
    )
