"""This host's list of vaults: name -> destination URL and connection settings, no secrets.

A vault's policies, instances and runs live in its destination (vaultstore.py); this file
only says where each vault is, so commands can take `--vault NAME` instead of a URL and
its connection flags. It is `vaults.json` in the state directory (core.paths).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InputError, OperationFailed
from core.paths import adopt_fd, state_dir
from core.protection.model import Vault, validate_name
from core.storage import StoreConfig
from core.urls import Location, parse_location

FILE_NAME = "vaults.json"
#: StoreConfig fields worth remembering: where and how to connect, never a secret
_SETTINGS = ("endpoint_url", "aws_profile", "read_timeout", "addressing_style", "azure_credential")


@dataclass(frozen=True)
class VaultEntry:
    """Where one vault lives: its destination without credentials and how to reach it."""

    name: str
    destination: str
    cloud_provider: str | None = None
    settings: tuple[tuple[str, Any], ...] = ()

    def location(self) -> Location:
        return parse_location(self.destination, self.cloud_provider)

    def store_config(self) -> StoreConfig:
        return StoreConfig(**dict(self.settings))

    def to_json(self) -> dict[str, Any]:
        return {
            "cloudProvider": self.cloud_provider,
            "destination": self.destination,
            "name": self.name,
            "settings": dict(self.settings),
        }

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> VaultEntry:
        settings = data.get("settings") or {}
        return cls(
            name,
            str(data["destination"]),
            data.get("cloudProvider"),
            tuple((k, v) for k, v in sorted(settings.items()) if k in _SETTINGS),
        )


def entry_for(vault: Vault, cloud_provider: str | None, config: StoreConfig) -> VaultEntry:
    """The registry entry of a vault created with these connection settings."""
    settings = tuple(
        (key, getattr(config, key)) for key in _SETTINGS if getattr(config, key) is not None
    )
    return VaultEntry(vault.name, vault.destination, cloud_provider, settings)


class Registry:
    """The vaults this host knows, read from and written to `vaults.json`."""

    def __init__(self, explicit_state_dir: str | None = None) -> None:
        self.path = state_dir(explicit_state_dir) / FILE_NAME

    def entries(self) -> list[VaultEntry]:
        document = self._load()
        return [VaultEntry.from_json(name, document[name]) for name in sorted(document)]

    def get(self, name: str) -> VaultEntry:
        document = self._load()
        if validate_name("vault", name) not in document:
            known = ", ".join(sorted(document)) or "none"
            raise InputError(f"there is no vault {name!r} on this host (known: {known})")
        return VaultEntry.from_json(name, document[name])

    def add(self, entry: VaultEntry) -> None:
        document = self._load()
        if entry.name in document:
            raise InputError(f"vault {entry.name!r} already exists on this host")
        document[entry.name] = entry.to_json()
        self._save(document)

    def remove(self, name: str) -> None:
        document = self._load()
        document.pop(name, None)
        self._save(document)

    def _load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise OperationFailed(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            raise OperationFailed(f"{self.path} is not valid JSON; fix or remove it") from None
        vaults = document.get("vaults", {}) if isinstance(document, dict) else None
        if not isinstance(vaults, dict):  # never taken for no vaults, then written over
            raise OperationFailed(
                f'{self.path} is not a vault registry ({{"vaults": {{...}}}}); fix or remove it'
            )
        return dict(vaults)

    def _save(self, vaults: dict[str, Any]) -> None:
        """Write the whole file atomically (a temporary file renamed over it)."""
        text = json.dumps({"vaults": vaults}, indent=2, sort_keys=True) + "\n"
        directory = Path(self.path).parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=directory, prefix=".vaults-")
            adopt_fd(handle, directory)  # sudo pgvault in postgres's state directory
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temporary, self.path)
        except OSError as exc:
            raise OperationFailed(f"cannot write {self.path}: {exc.strerror}") from None


def vault_names(state_dir: str | None, vault: str | None) -> list[str]:
    """The one vault named, or every vault this host knows."""
    if vault is not None:
        return [Registry(state_dir).get(vault).name]
    return [entry.name for entry in Registry(state_dir).entries()]


__all__ = ["Registry", "VaultEntry", "entry_for", "vault_names"]
