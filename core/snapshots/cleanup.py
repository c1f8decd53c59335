"""Deleting a snapshot backup's disk snapshots, as barman-cloud-backup-delete does first."""

from __future__ import annotations

import logging

from core.catalog.backup_info import BackupInfo
from core.errors import OperationFailed
from core.snapshots.aws import Ec2
from core.snapshots.info import load

log = logging.getLogger("pgvault.snapshots")


def check_deletable(info: BackupInfo) -> None:
    """Refuse (before anything changes) a backup whose snapshots pgvault cannot delete."""
    if info.snapshots_info and load(info.snapshots_info).provider != "aws":
        provider = load(info.snapshots_info).provider
        raise OperationFailed(
            f"backup {info.backup_id} holds {provider} disk snapshots, which pgvault cannot "
            "delete: delete it with barman-cloud-backup-delete"
        )


def delete_snapshots(info: BackupInfo) -> list[str]:
    """Delete every EBS snapshot of the backup; one already gone counts as deleted."""
    if not info.snapshots_info:
        return []
    snapshots = load(info.snapshots_info)
    ec2 = Ec2(snapshots.get("region"))
    deleted = []
    for snapshot in snapshots.snapshots:
        snapshot_id = snapshots.identifier(snapshot)
        if ec2.delete_snapshot(snapshot_id):
            deleted.append(snapshot_id)
        else:
            log.warning("snapshot %s of backup %s was already gone", snapshot_id, info.backup_id)
    return deleted
