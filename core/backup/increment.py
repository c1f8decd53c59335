"""Incremental and differential backups: which parent, and when to take a full one instead.

An incremental's pgvault.json carries an `incremental` record: its kind, its parent, its
chain (every ancestor, the full backup first), how changed blocks were found, and a map of
each file not stored whole (size, mtime, the blocks stored). As pgBackRest does, a backup
that cannot be trusted as an incremental (no usable parent, another cluster or timeline)
is taken as a full backup, with the reason logged and recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.catalog.backup_info import DONE, BackupInfo
from core.catalog.chains import DIFFERENTIAL, FULL, chain_of, kind_of
from core.catalog.layout import BACKUP_ID_RE
from core.catalog.manifest import PgvaultManifest
from core.catalog.reader import Catalog
from core.encryption import credentials_given
from core.errors import DecryptionFailed, InputError, ObjectNotFound
from core.postgres.connection import ServerFacts
from core.storage import ObjectStore


@dataclass(frozen=True, slots=True)
class FileState:
    """One file as a backup restores it: size and mtime (what the next incremental compares)."""

    size: int
    mtime: float


@dataclass(frozen=True)
class Parent:
    """The backup an incremental builds on, with what it restores to."""

    info: BackupInfo
    manifest: PgvaultManifest
    chain: tuple[str, ...]  # the parent's own ancestors, full first

    @property
    def backup_id(self) -> str:
        return self.info.backup_id

    @property
    def start_lsn(self) -> str:
        return str(self.manifest.postgres.get("start_lsn") or self.info.begin_xlog)


@dataclass(frozen=True)
class ParentChoice:
    """What the request asked for, and the parent found or why a full backup is taken."""

    requested: str  # incremental or differential
    parent: Parent | None
    fallback: str | None  # why a full backup is taken instead


def restored_files(manifest: PgvaultManifest) -> dict[str, FileState]:
    """Every file the backup restores (pg_control and backup_label aside), by path."""
    files = {f.path: FileState(f.size, f.mtime) for f in manifest.files}
    record = manifest.incremental
    if record and kind_of(manifest) != FULL:
        for path, size, mtime, _runs in record.get("files", ()):
            files[path] = FileState(int(size), float(mtime))
    return files


def choose_parent(
    store: ObjectStore,
    server: str,
    requested: str,
    backup_from: str | None,
) -> ParentChoice:
    """The parent of an incremental (InputError for an unknown --incremental-from)."""
    catalog = Catalog(store, server)
    if backup_from is not None:
        info = _named(catalog, backup_from)
        if not info.is_done:
            return ParentChoice(requested, None, f"parent {info.backup_id} is {info.status}")
    else:
        done = [b for b in catalog.backups() if b.status == DONE]
        if not done:
            return ParentChoice(requested, None, f"no DONE backup of server {server} to build on")
        info = done[-1]
    manifest, unreadable = _parent_manifest(catalog, info)
    if manifest is None:
        return ParentChoice(requested, None, unreadable)
    chain = chain_of(manifest)
    if requested == DIFFERENTIAL and chain:
        return choose_parent(store, server, requested, chain[0])
    broken = _broken_link(catalog, chain)
    if broken:
        return ParentChoice(requested, None, broken)
    return ParentChoice(requested, Parent(info, manifest, chain), None)


def _parent_manifest(
    catalog: Catalog, info: BackupInfo
) -> tuple[PgvaultManifest | None, str | None]:
    """The parent's pgvault.json, or why an incremental cannot be planned on it."""
    try:
        manifest = catalog.pgvault_manifest(info.backup_id)
    except DecryptionFailed as exc:
        if credentials_given():
            raise  # a mistyped key must not turn every nightly incremental into a full backup
        # A write-only host (its key file wrapped for others) cannot read what it wrote.
        return None, f"parent {info.backup_id}'s pgvault.json cannot be read here: {exc}"
    if manifest is None:
        return None, f"parent {info.backup_id} has no pgvault.json (not taken by pgvault)"
    if manifest.postgres.get("barman_backup_dir"):
        # Never tried as a parent: Barman's copy, not pgvault's walk of the live cluster.
        return None, f"parent {info.backup_id} is a Barman backup (uploaded by the hook)"
    return manifest, None


def _named(catalog: Catalog, backup_id: str) -> BackupInfo:
    if not BACKUP_ID_RE.match(backup_id):
        raise InputError(f"--incremental-from {backup_id!r} is not a backup ID (YYYYMMDDTHHMMSS)")
    try:
        return catalog.get(backup_id)
    except ObjectNotFound:
        raise InputError(
            f"--incremental-from: backup {backup_id} not found for server {catalog.server}; "
            "pick a backup ID from backup-list"
        ) from None


def _broken_link(catalog: Catalog, chain: Sequence[str]) -> str | None:
    """Why the parent's chain cannot be restored (a link deleted or not DONE), if it cannot."""
    for backup_id in chain:
        try:
            info = catalog.get(backup_id)
        except ObjectNotFound:
            return f"the parent's chain is broken: backup {backup_id} is missing"
        if not info.is_done:
            return f"the parent's chain is broken: backup {backup_id} is {info.status}"
    return None


def mismatch(parent: Parent, facts: ServerFacts, timeline: int) -> str | None:
    """Why the parent cannot be built on by this server, if it cannot."""
    info = parent.info
    if info.systemid and str(info.systemid) != str(facts.system_identifier):
        return (
            f"parent {info.backup_id} is of another cluster (system identifier {info.systemid}, "
            f"this server {facts.system_identifier})"
        )
    if info.version and int(info.version) // 10000 != facts.major:
        return f"parent {info.backup_id} is of PostgreSQL {int(info.version) // 10000}"
    if info.timeline is not None and int(info.timeline) != timeline:
        return f"parent {info.backup_id} is on timeline {info.timeline}, this server on {timeline}"
    return None


def increment_record(
    kind: str,
    parent: Parent,
    method: str,
    method_note: str | None,
    files: list[list[Any]],
    block_size: int,
) -> dict[str, Any]:
    """pgvault.json's `incremental` record of an incremental or differential backup."""
    return {
        "kind": kind,
        "parent": parent.backup_id,
        "chain": [*parent.chain, parent.backup_id],
        "method": method,
        "method_note": method_note,
        "since_lsn": parent.start_lsn,
        "block_size": block_size,
        "files": files,
    }


def fallback_record(requested: str, reason: str) -> dict[str, Any]:
    """pgvault.json's record of a full backup taken when an incremental was asked for."""
    return {"kind": FULL, "requested": requested, "fallback": reason}
