"""Deleting a snapshot backup's disk snapshots, as barman-cloud-backup-delete does first.

The provider and its account (AWS region, GCP project) come from the backup's
snapshots_info: deleting needs no snapshot option (GCP snapshots are global, zone-less;
Azure's are in the backup's resource group).
"""

from __future__ import annotations

import logging

from core.catalog.backup_info import BackupInfo
from core.errors import OperationFailed
from core.snapshots.clouds import open_for_backup
from core.snapshots.info import load

log = logging.getLogger("pgvault.snapshots")


def check_deletable(info: BackupInfo) -> None:
    """Refuse (before anything changes) a backup whose snapshots pgvault cannot delete."""
    if info.snapshots_info and load(info.snapshots_info).provider not in ("aws", "gcp", "azure"):
        provider = load(info.snapshots_info).provider
        raise OperationFailed(
            f"backup {info.backup_id} holds {provider} disk snapshots, which pgvault cannot "
            "delete: delete it with barman-cloud-backup-delete"
        )


def delete_snapshots(info: BackupInfo) -> list[str]:
    """Delete every disk snapshot of the backup; one already gone counts as deleted."""
    if not info.snapshots_info:
        return []
    snapshots = load(info.snapshots_info)
    cloud = open_for_backup(snapshots)
    deleted = []
    for snapshot in snapshots.snapshots:
        snapshot_id = snapshots.identifier(snapshot)
        if cloud.delete_snapshot(snapshot_id):
            deleted.append(snapshot_id)
        else:
            log.warning("snapshot %s of backup %s was already gone", snapshot_id, info.backup_id)
    return deleted
