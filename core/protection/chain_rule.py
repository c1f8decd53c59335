"""An Incremental backup rule: which slots start a new chain with a full backup.

A chain that never ends could never expire (retention keeps a full backup while a kept
incremental needs it), so an Incremental rule takes a full backup at its first slot of each
ISO week (Monday to Sunday, in the schedule's time zone) and incrementals on that chain at the
others. A week's full backup that failed or was deleted is retaken at the next slot.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo

from core.protection.policy import BackupType
from core.protection.zones import require_aware, wall_time


def slot_kind(
    rule_type: BackupType | None, slot: datetime, fulls: Iterable[datetime], zone: tzinfo
) -> BackupType | None:
    """The kind of backup a slot takes: the rule's, but Full where an Incremental rule's
    week has no full backup yet (`fulls`: the slots of the instance's good full backups)."""
    if rule_type is not BackupType.INCREMENTAL:
        return rule_type
    week = wall_time(require_aware(slot, "slot"), zone).isocalendar()[:2]
    if any(wall_time(require_aware(f), zone).isocalendar()[:2] == week for f in fulls):
        return BackupType.INCREMENTAL
    return BackupType.FULL


__all__ = ["slot_kind"]
