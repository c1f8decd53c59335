"""The protection commands' operations (vault, policy, backup-instance), JSON in and out.

Each function takes what the batch edge parsed and returns a JSON-ready value; every bad
input is an InputError (exit 3) naming its JSON path, raised before anything is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from core.catalog.objectlock import require_object_lock
from core.errors import InputError
from core.protection.jsondoc import Node, loads, read_document
from core.protection.model import (
    BackupInstance,
    Datasource,
    ProtectionState,
    SecondaryRetention,
    Vault,
    check_conninfo,
    policy_name,
    validate_name,
)
from core.protection.notify_urls import check_notify_urls
from core.protection.policy import BackupPolicy, policy_to_json
from core.protection.policy_read import parse_input_policy
from core.protection.registry import Registry, VaultEntry, entry_for
from core.protection.secretref import SecretReference
from core.protection.simulate import EventKind, simulate
from core.protection.vaultstore import VaultStore, VaultUnavailable
from core.storage import ObjectStore, StoreConfig, open_store
from core.urls import Location, public_url

log = logging.getLogger("pgvault.protection")


def read_json_file(path: str, what: str) -> Any:
    """A JSON file an operator named (`--policy FILE`); InputError when unreadable."""
    return loads(read_document(path, what), f"{what} {path}")


def read_policy_file(path: str) -> BackupPolicy:
    return parse_input_policy(read_document(path, "policy file"), f"policy file {path}")


@dataclass(frozen=True)
class OpenVault:
    """A vault found in the registry, with its destination open."""

    entry: VaultEntry
    store: VaultStore
    #: the stored vault's immutability (vault.json in the destination is the truth)
    immutability_days: int | None = None

    @property
    def location(self) -> Location:
        return self.entry.location()

    @property
    def config(self) -> StoreConfig:
        return self.entry.store_config()

    @property
    def backup_config(self) -> StoreConfig:
        """What the vault's backups are written with: under Object Lock when it has one."""
        return replace(self.config, object_lock_days=self.immutability_days)


@contextmanager
def opened_vault(state_dir: str | None, name: str) -> Iterator[OpenVault]:
    """The named vault's store, open for the duration of the block."""
    entry = Registry(state_dir).get(name)
    with open_store(entry.location(), entry.store_config()) as store:
        vault = VaultStore(store, name)
        try:
            stored = vault.load()
        except VaultUnavailable as exc:
            raise VaultUnavailable(
                f"vault {name!r} is unavailable: {exc} in its destination {entry.destination} "
                "(the destination is gone or not mounted, or the vault was deleted there)"
            ) from None
        yield OpenVault(entry, vault, stored.immutability_days)


# ---- vaults ---------------------------------------------------------------------------------


def create_vault(
    state_dir: str | None,
    name: str,
    *,
    location: Location,
    cloud_provider: str | None,
    config: StoreConfig,
    immutability_days: int | None = None,
) -> dict[str, Any]:
    """Store a new vault in its destination, or attach the one another host stored there,
    and remember where it is on this host."""
    validate_name("vault", name)
    if immutability_days is not None:
        require_object_lock(location, "--immutability-days")
    registry = Registry(state_dir)
    if any(entry.name == name for entry in registry.entries()):
        raise InputError(f"vault {name!r} already exists on this host")
    here = public_url(location)
    wanted = Vault(name, here, immutability_days, datetime.now(UTC).replace(microsecond=0))
    with open_store(location, config) as store:
        vaults = VaultStore(store, name)
        if immutability_days is not None:
            _require_lock_bucket(store, location)
        attached = not vaults.create_or_exists(wanted)
        vault = vaults.load() if attached else wanted
        if attached:
            _check_attach(vault, immutability_days, store, location)
    # This host reaches the vault through its own URL (another host may mount it elsewhere).
    registry.add(entry_for(replace(vault, destination=here), cloud_provider, config))
    return {**vault.to_json(), "attached": attached}


def _require_lock_bucket(
    store: ObjectStore, location: Location, what: str = "--immutability-days"
) -> None:
    if not store.object_lock_enabled():
        raise InputError(
            f"{what}: bucket {location.bucket} does not have S3 Object Lock "
            "enabled; use a bucket created with Object Lock (nothing was stored)"
        )


def _check_attach(
    stored: Vault, immutability_days: int | None, store: ObjectStore, location: Location
) -> None:
    """Attaching reads the stored settings; a setting given differently is refused."""
    if immutability_days is not None and immutability_days != stored.immutability_days:
        raise InputError(
            f"vault {stored.name!r} already exists in this destination with immutabilityDays "
            f"{stored.immutability_days}, not {immutability_days}: attach without "
            "--immutability-days to use its stored settings (nothing was changed)"
        )
    if stored.immutability_days is not None:
        what = f"vault {stored.name!r} (immutabilityDays {stored.immutability_days})"
        require_object_lock(location, what)
        _require_lock_bucket(store, location, what)


def list_vaults(state_dir: str | None) -> list[dict[str, Any]]:
    return [entry.to_json() for entry in Registry(state_dir).entries()]


def show_vault(state_dir: str | None, name: str) -> dict[str, Any]:
    with opened_vault(state_dir, name) as vault:
        document = vault.store.load().to_json()
        document["policies"] = vault.store.list_policies()
        document["backupInstances"] = vault.store.list_instances()
    return document


def update_vault(
    state_dir: str | None,
    name: str,
    *,
    notify: tuple[str, ...] | None = None,
    wal_lag_threshold: str | None = None,
    allow_inline_secrets: bool = False,
) -> dict[str, Any]:
    """`vault update`: new notification URLs (None: unchanged, (): none), a WAL lag threshold."""
    urls = None if notify is None else check_notify_urls(notify, allow_inline=allow_inline_secrets)
    with opened_vault(state_dir, name) as vault:
        current = vault.store.load()
        changed = replace(
            current,
            notify=current.notify if urls is None else urls,
            wal_lag_threshold=wal_lag_threshold or current.wal_lag_threshold,
        )
        vault.store.update(changed)
    return changed.to_json()


def delete_vault(state_dir: str | None, name: str) -> dict[str, Any]:
    """Delete the vault's state (refused while instances use it); its backups stay. A vault
    whose destination is unavailable is only forgotten by this host (`forgotten`)."""
    try:
        with opened_vault(state_dir, name) as vault:
            removed = vault.store.delete()
    except VaultUnavailable as exc:
        # Nothing can be checked or deleted there; what is there stays, and `vault create
        # NAME --destination URL` attaches to it again once the destination is back.
        Registry(state_dir).remove(name)
        log.warning("%s: only this host's registration of it was removed", exc)
        return {"deleted": name, "forgotten": True, "objects": 0, "reason": str(exc)}
    Registry(state_dir).remove(name)
    return {"deleted": name, "forgotten": False, "objects": removed}


# ---- policies -------------------------------------------------------------------------------


def create_policy(state_dir: str | None, vault: str, name: str, path: str) -> dict[str, Any]:
    policy = read_policy_file(path)
    with opened_vault(state_dir, vault) as opened:
        stored = opened.store.create_policy(name, policy)
    return policy_to_json(stored)


def list_policies(state_dir: str | None, vault: str) -> list[dict[str, Any]]:
    with opened_vault(state_dir, vault) as opened:
        return [policy_to_json(opened.store.get_policy(n)) for n in opened.store.list_policies()]


def show_policy(state_dir: str | None, vault: str, name: str) -> dict[str, Any]:
    with opened_vault(state_dir, vault) as opened:
        return policy_to_json(opened.store.get_policy(name))


def delete_policy(state_dir: str | None, vault: str, name: str) -> dict[str, Any]:
    with opened_vault(state_dir, vault) as opened:
        opened.store.delete_policy(name)
    return {"deleted": name}


def simulate_policy(
    path: str, start: datetime, days: int, secondary_retention: str = "keep"
) -> dict[str, Any]:
    """`policy simulate`: every slot, its tag, and each backup's moves and deletion. With
    `follow` (an instance's --secondary-retention), each deletion is followed by the one in
    the secondary destination, where the agent copied every backup (store "secondary")."""
    if days < 1:
        raise InputError("--days must be at least 1")
    policy = read_policy_file(path)
    try:
        end = start + timedelta(days=days)
    except OverflowError:  # past year 9999 (or past timedelta's 999 999 999 days)
        raise InputError(
            f"--from {start.date()} --days {days}: the simulation would end past year 9999"
        ) from None
    result = simulate(policy, start, end)
    follow = SecondaryRetention(secondary_retention) is SecondaryRetention.FOLLOW
    events: list[dict[str, Any]] = []
    for event in result.events:
        shown = {
            "at": event.at.isoformat(),
            "backupId": event.backup_id,
            "event": str(event.kind),
            **({"backupType": str(event.backup_type)} if event.backup_type else {}),
            "store": str(event.store),
            "tag": event.tag,
            "target": str(event.target) if event.target else None,
        }
        events.append(shown)
        if follow and event.kind is EventKind.DELETE:
            events.append({**shown, "store": "secondary"})
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "events": events,
        "keptAtEnd": {
            backup_id: sorted(str(s) for s in stores)
            for backup_id, stores in sorted(result.kept_at(end - timedelta(microseconds=1)).items())
        },
    }


# ---- backup instances -----------------------------------------------------------------------


def initialize_instance(
    *,
    conninfo: str,
    server_name: str,
    policy: str,
    name: str | None = None,
    secret_store_type: str | None = None,
    secret_store_uri: str | None = None,
) -> dict[str, Any]:
    """`backup-instance initialize`: the instance document to review and `create`."""
    secret = None
    if (secret_store_type is None) != (secret_store_uri is None):
        raise InputError("--secret-store-type and --secret-store-uri go together")
    if secret_store_type is not None:
        secret = SecretReference.parse(f"{secret_store_type}:{secret_store_uri}", "--secret-store")
    datasource = Datasource(conninfo, secret)
    check_conninfo(conninfo, "--datasource")
    instance = BackupInstance(
        validate_name("backup instance", name or server_name),
        server_name,
        datasource,
        validate_name("policy", policy),
    )
    return instance.to_json()


def create_instance(
    state_dir: str | None,
    vault: str,
    path: str,
    allow_inline_secrets: bool = False,
    secondary: str | None = None,
    secondary_retention: str | None = None,
) -> dict[str, Any]:
    """Store an instance; its secret references must be readable now (never stored).
    `secondary`, `secondary_retention`: --secondary-destination and --secondary-retention,
    over the file's secondaryDestination and secondaryRetention."""
    what = f"backup instance file {path}"
    instance = BackupInstance.from_json(read_json_file(path, "backup instance file"), what, vault)
    instance = replace(instance, **_secondary_changes(instance, secondary, secondary_retention))
    check_conninfo(instance.datasource.conninfo, f"{what} $.dataSourceInfo.conninfo")
    if instance.datasource.secret is not None:
        try:
            instance.datasource.secret.resolve()
        except InputError as exc:
            raise InputError(f"{what} $.datasourceAuthCredentials: {exc}") from None
    check_notify_urls(instance.notify, f"{what} $.notify:", allow_inline_secrets)
    created = replace(instance, created=datetime.now(UTC).replace(microsecond=0))
    with opened_vault(state_dir, vault) as opened:
        opened.store.create_instance(created)
    return created.to_json()


def list_instances(state_dir: str | None, vault: str) -> list[dict[str, Any]]:
    with opened_vault(state_dir, vault) as opened:
        return [instance.to_json() for instance in opened.store.instances()]


def show_instance(state_dir: str | None, vault: str, name: str) -> dict[str, Any]:
    """The instance and its runs; a run whose copy to the secondary was killed shows that
    copy not made (`copyInterrupted`) until the next pass makes it."""
    from core.protection.copy_owner import copy_killed

    with opened_vault(state_dir, vault) as opened:
        document = opened.store.get_instance(name).to_json()
        document["runs"] = [
            {**run.to_json(), "copyInterrupted": run.copy_interrupted or copy_killed(run)}
            for run in opened.store.runs(name)
        ]
    return document


def delete_instance(state_dir: str | None, vault: str, name: str) -> dict[str, Any]:
    with opened_vault(state_dir, vault) as opened:
        removed = opened.store.delete_instance(name)
    return {"deleted": name, "objects": removed}


def update_instance(  # noqa: PLR0913 - one keyword per setting it changes
    state_dir: str | None,
    vault: str,
    name: str,
    notify: tuple[str, ...] | None,
    allow_inline_secrets: bool = False,
    *,
    secondary: str | None = None,
    secondary_retention: str | None = None,
    policy: str | None = None,
) -> dict[str, Any]:
    """`backup-instance update`: the instance's own recipients (--notify URL... or none),
    its secondary destination (a URL, or "" for none), what retention does there (keep or
    follow) and its policy (one of the vault's, as `az ... update-policy`); None leaves one
    as it is. Its run records stay: the next pass applies the new policy to its backups."""
    changes: dict[str, Any] = {}
    if notify is not None:
        changes["notify"] = check_notify_urls(notify, allow_inline=allow_inline_secrets)
    if policy is not None:
        # a name or an ARM policy ID, read as create reads policyInfo.policyId
        option = Node(policy, "--policy", "backup-instance update")
        changes["policy_name"] = policy_name(option, vault)
    with opened_vault(state_dir, vault) as opened:
        stored = opened.store.get_instance(name)
        changes |= _secondary_changes(stored, secondary, secondary_retention)
        instance = replace(stored, **changes)
        opened.store.update_instance(instance)
    return instance.to_json()


def _secondary_changes(
    instance: BackupInstance, secondary: str | None, retention: str | None
) -> dict[str, Any]:
    """The secondary fields to change (None: leave it). Removing the secondary destination
    (`""`) drops a `follow` with it: there is nothing left to follow. The instance's own
    check refuses `follow` without a secondary destination (exit 3)."""
    changes: dict[str, Any] = {}
    if secondary is not None:
        changes["secondary_destination"] = _secondary(secondary) or None
        if not secondary and retention is None:
            changes["secondary_retention"] = SecondaryRetention.KEEP
    if retention is not None:
        changes["secondary_retention"] = SecondaryRetention(retention)
    return changes


def _secondary(url: str) -> str:
    """A checked secondary destination URL ("" stays "": none)."""
    from core.copy.job import secondary_url

    return secondary_url(url) if url else ""


def set_protection(
    state_dir: str | None, vault: str, name: str, state: ProtectionState
) -> dict[str, Any]:
    """stop-protection / resume-protection: the agent skips a stopped instance."""
    with opened_vault(state_dir, vault) as opened:
        instance = replace(opened.store.get_instance(name), state=state)
        opened.store.update_instance(instance)
    return instance.to_json()


__all__ = [
    "OpenVault",
    "create_instance",
    "create_policy",
    "create_vault",
    "delete_instance",
    "delete_policy",
    "delete_vault",
    "initialize_instance",
    "list_instances",
    "list_policies",
    "list_vaults",
    "opened_vault",
    "read_json_file",
    "read_policy_file",
    "set_protection",
    "show_instance",
    "show_policy",
    "show_vault",
    "simulate_policy",
    "update_instance",
    "update_vault",
]
