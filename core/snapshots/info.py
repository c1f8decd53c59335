"""backup.info's `snapshots_info`: the Python literal barman-cloud writes, read and written.

barman writes `repr(SnapshotsInfo.to_dict())` and reads it back with `ast.literal_eval`:
`{'provider': P, 'provider_info': {...}, 'snapshots': [{'mount': {'mount_options': O,
'mount_point': M}, 'provider': {...}}, ...]}`, keys in the order of each provider's
`_provider_fields` (barman/cloud_providers/*.py, 3.19). The same text is written here, so
barman-cloud-backup-list/-show read pgvault's snapshot backups and pgvault reads barman's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import OperationFailed
from core.pyliteral import literal

#: per provider: (provider_info fields, each snapshot's provider fields, its identifier field)
PROVIDERS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "aws": (
        ("account_id", "region"),
        ("device_name", "snapshot_id", "snapshot_name", "snapshot_lock_mode"),
        "snapshot_id",
    ),
    "gcp": (("project",), ("device_name", "snapshot_name", "snapshot_project"), "snapshot_name"),
    "azure": (
        ("subscription_id", "resource_group"),
        ("location", "lun", "snapshot_name"),
        "snapshot_name",
    ),
}


@dataclass(frozen=True)
class DiskSnapshot:
    """One disk's snapshot: where the disk was mounted, and the provider's fields."""

    mount_point: str | None
    mount_options: str | None
    fields: tuple[tuple[str, Any], ...]  # in the provider's order

    def get(self, name: str) -> Any:
        return dict(self.fields).get(name)


@dataclass(frozen=True)
class SnapshotsInfo:
    """A snapshot backup's snapshots, and the provider's account-level fields."""

    provider: str
    provider_info: tuple[tuple[str, Any], ...]
    snapshots: tuple[DiskSnapshot, ...]

    def get(self, name: str) -> Any:
        return dict(self.provider_info).get(name)

    def identifier(self, snapshot: DiskSnapshot) -> str:
        """The ID the provider's API knows the snapshot by (AWS: snapshot_id; else the name)."""
        return str(snapshot.get(PROVIDERS[self.provider][2]))

    def to_dict(self) -> dict[str, Any]:
        info_fields, _, _ = PROVIDERS[self.provider]
        info = dict(self.provider_info)
        return {
            "provider": self.provider,
            "provider_info": {name: info.get(name) for name in info_fields},
            "snapshots": [_snapshot_dict(self.provider, s) for s in self.snapshots],
        }


def _snapshot_dict(provider: str, snapshot: DiskSnapshot) -> dict[str, Any]:
    _, snapshot_fields, _ = PROVIDERS[provider]
    values = dict(snapshot.fields)
    return {
        "mount": {"mount_options": snapshot.mount_options, "mount_point": snapshot.mount_point},
        "provider": {name: values.get(name) for name in snapshot_fields},
    }


def dump(info: SnapshotsInfo) -> str:
    """The backup.info value, as barman's output_snapshots_info writes it."""
    return repr(info.to_dict())


def load(text: str) -> SnapshotsInfo:
    """A backup.info's snapshots_info; OperationFailed when it is not barman's shape."""
    try:
        raw = literal(text)
        provider = raw["provider"]
        info_fields, snapshot_fields, _ = PROVIDERS[provider]
        provider_info = raw.get("provider_info") or {}
        snapshots = tuple(
            DiskSnapshot(
                mount_point=(s.get("mount") or {}).get("mount_point"),
                mount_options=(s.get("mount") or {}).get("mount_options"),
                fields=tuple((n, (s.get("provider") or {}).get(n)) for n in snapshot_fields),
            )
            for s in raw["snapshots"]
        )
    except (ValueError, SyntaxError, KeyError, TypeError, AttributeError) as exc:
        raise OperationFailed(f"unreadable snapshots_info in backup.info ({exc!r})") from None
    return SnapshotsInfo(
        provider=provider,
        provider_info=tuple((n, provider_info.get(n)) for n in info_fields),
        snapshots=snapshots,
    )


def describe(info: SnapshotsInfo) -> list[str]:
    """Lines for backup-show: the provider, then each snapshot and its disk's mount."""
    context = ", ".join(f"{k} {v}" for k, v in info.provider_info if v is not None)
    lines = [f"{info.provider} ({context})" if context else info.provider]
    for snapshot in info.snapshots:
        extra = ", ".join(
            f"{k} {v}" for k, v in snapshot.fields if v is not None and k != "snapshot_id"
        )
        lines.append(
            f"{info.identifier(snapshot)}: mounted at {snapshot.mount_point} "
            f"({snapshot.mount_options}); {extra}"
        )
    return lines
