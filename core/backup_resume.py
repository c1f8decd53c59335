"""Resuming a failed backup: checkpoints of finished archive parts, and what a new run reuses.

While a backup runs, every archive part that is completely stored gets a checkpoint object
(`pgvault-checkpoint/<part>.json` in the backup's directory, CockroachDB's BACKUP-CHECKPOINT
idea): the part's record and the size and checksum of every file it holds. A part is an
object of its own, so it survives the process dying. Barman ignores these objects: their
names do not start with an archive set's name.

A resumed run (`BackupRequest.resume`) starts a new PostgreSQL backup in the same backup
directory and keeps the longest run of parts of each archive set, from the first, whose
every file is still on disk with the same size and checksum, read again after the new
backup started (as pgBackRest's resume: a file equal to its stored copy is as good as one
copied now). The other parts of the failed run are deleted, the new run writes the
remaining files into parts numbered after the kept ones.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from core.backup_info import FAILED, STARTED, parse
from core.errors import ObjectNotFound, OperationFailed, PgvaultError, StorageError
from core.layout import PGVAULT_MANIFEST, ServerLayout, parse_archive_name
from core.manifest import ArchiveRecord, FileRecord, PgvaultManifest, load_pgvault, new_checksum
from core.postgres.pgdata import Tree
from core.storage import ObjectStore, PutOptions

log = logging.getLogger("pgvault.backup")

CHECKPOINT_DIR = "pgvault-checkpoint"
READ_BLOCK = 4 * 1024 * 1024


@dataclass(frozen=True)
class PartCheckpoint:
    """A finished archive part and the files it holds."""

    archive: ArchiveRecord
    files: tuple[FileRecord, ...]


def checkpoint_key(layout: ServerLayout, backup_id: str, filename: str) -> str:
    return layout.backup_file(backup_id, f"{CHECKPOINT_DIR}/{filename}.json")


def write_checkpoint(
    store: ObjectStore,
    layout: ServerLayout,
    backup_id: str,
    part: PartCheckpoint,
    options: PutOptions,
) -> None:
    body = {"archive": asdict(part.archive), "files": [asdict(f) for f in part.files]}
    key = checkpoint_key(layout, backup_id, part.archive.filename)
    store.put_bytes(key, json.dumps(body).encode(), options)


def load_checkpoints(
    store: ObjectStore, layout: ServerLayout, backup_id: str
) -> dict[str, list[PartCheckpoint]]:
    """Every checkpoint of a backup, by archive set, in part order."""
    prefix = layout.backup_file(backup_id, CHECKPOINT_DIR) + "/"
    found: dict[str, list[PartCheckpoint]] = {}
    for info in store.list_objects(prefix):
        try:
            body = json.loads(store.get_bytes(info.key))
            part = PartCheckpoint(
                ArchiveRecord(**body["archive"]),
                tuple(FileRecord(**f) for f in body["files"]),
            )
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring unreadable checkpoint %s: %s", info.key, exc)
            continue
        found.setdefault(part.archive.name, []).append(part)
    for parts in found.values():
        parts.sort(key=lambda p: p.archive.part)
    return found


def delete_checkpoints(store: ObjectStore, layout: ServerLayout, backup_id: str) -> None:
    prefix = layout.backup_file(backup_id, CHECKPOINT_DIR) + "/"
    store.delete_many(info.key for info in store.list_objects(prefix))


def resumable_manifest(
    store: ObjectStore,
    layout: ServerLayout,
    backup_id: str,
    system_identifier: str,
    compression: str | None,
    algorithm: str,
    tablespace_oids: Iterable[int],
    lease_is_dead: Callable[[dict[str, Any]], bool],
) -> PgvaultManifest:
    """The failed backup's manifest, if a new run of this server may continue it.

    A backup still STARTED whose process is gone (its lease names this host and a dead
    process) counts as failed: it is what a SIGKILL leaves.
    """
    what = f"cannot resume backup {backup_id} of server {layout.server}"
    try:
        info = parse(backup_id, store.get_bytes(layout.backup_info(backup_id)))
        manifest = load_pgvault(store.get_bytes(layout.backup_file(backup_id, PGVAULT_MANIFEST)))
    except ObjectNotFound:
        raise OperationFailed(f"{what}: it is not in the catalog") from None
    except StorageError as exc:
        raise OperationFailed(f"{what}: {exc}") from None
    interrupted = (
        info.status == STARTED
        and manifest.state == "running"
        and lease_is_dead(manifest.lease or {})
    )
    if info.status != FAILED and not interrupted:
        raise OperationFailed(f"{what}: it is {info.status}, only a FAILED backup is resumed")
    reasons = []
    if manifest.postgres.get("system_identifier") != system_identifier:
        reasons.append("it is another cluster's")
    if manifest.compression != compression:
        reasons.append(f"it was compressed with {manifest.compression or 'nothing'}")
    if manifest.checksum_algorithm != algorithm:
        reasons.append(f"its files are checksummed with {manifest.checksum_algorithm}")
    if sorted(int(t["oid"]) for t in manifest.tablespaces) != sorted(tablespace_oids):
        reasons.append("the tablespaces changed")
    if reasons:
        raise OperationFailed(f"{what}: {'; '.join(reasons)}")
    return manifest


@dataclass
class ResumePlan:
    """What a resumed run keeps of the failed one."""

    backup_id: str
    kept: dict[str, list[PartCheckpoint]] = field(default_factory=dict)

    @property
    def archives(self) -> list[ArchiveRecord]:
        return [p.archive for parts in self.kept.values() for p in parts]

    @property
    def files(self) -> list[FileRecord]:
        return [f for parts in self.kept.values() for p in parts for f in p.files]

    @property
    def reused_paths(self) -> set[str]:
        return {f.path for f in self.files}

    @property
    def reused_bytes(self) -> int:
        """File bytes not read nor sent again."""
        return sum(f.size for f in self.files)

    @property
    def reused_stored(self) -> int:
        """Stored (compressed) bytes not uploaded again."""
        return sum(a.size for a in self.archives)

    def next_part(self, name: str) -> int:
        return len(self.kept.get(name, []))

    def remaining(self, tree: Tree) -> Tree:
        """The tree without the files the kept parts already hold (directories stay)."""
        reused = self.reused_paths
        entries = [
            e for e in tree.entries if e.is_dir or tree.manifest_prefix + e.path not in reused
        ]
        return Tree(tree.root, tree.manifest_prefix, entries, tree.excluded)


def _unchanged(
    record: FileRecord, tree: Tree, algorithm: str, checkpoint: Callable[[], None]
) -> bool:
    """The file is on disk with the recorded size and checksum (read again now)."""
    if not record.path.startswith(tree.manifest_prefix):
        return False
    source = os.path.join(tree.root, record.path[len(tree.manifest_prefix) :])
    checksum = new_checksum(algorithm)
    size = 0
    try:
        with open(source, "rb") as fh:
            while block := fh.read(READ_BLOCK):
                checkpoint()
                checksum.update(block)
                size += len(block)
                if size > record.size:
                    return False
    except OSError:
        return False
    return size == record.size and checksum.hexdigest() == record.checksum


def plan_resume(
    store: ObjectStore,
    layout: ServerLayout,
    backup_id: str,
    trees: dict[str, Tree],
    algorithm: str,
    checkpoint: Callable[[], None],
    reporter_log: Callable[[str], None],
) -> ResumePlan:
    """Keep each set's leading parts whose files are unchanged; delete the rest of the run."""
    plan = ResumePlan(backup_id)
    for name, parts in load_checkpoints(store, layout, backup_id).items():
        kept: list[PartCheckpoint] = []
        for part in parts:
            if part.archive.part != len(kept) or name not in trees:
                break
            key = layout.backup_file(backup_id, part.archive.filename)
            try:
                if store.head(key).size != part.archive.size:
                    break
            except PgvaultError:
                break
            tree = trees[name]
            changed = next(
                (f for f in part.files if not _unchanged(f, tree, algorithm, checkpoint)), None
            )
            if changed is not None:
                reporter_log(
                    f"{part.archive.filename}: {changed.path} changed since, sent again "
                    "from this part on"
                )
                break
            kept.append(part)
        if kept:
            plan.kept[name] = kept
    # Everything else the failed run stored goes: parts not kept and their checkpoints.
    stale = []
    for info in store.list_objects(layout.backup_prefix(backup_id)):
        filename = info.key.rsplit("/", 1)[-1]
        ref = parse_archive_name(filename)
        if ref is not None and ref.part >= plan.next_part(ref.name):
            stale.append(info.key)
            stale.append(checkpoint_key(layout, backup_id, filename))
    store.delete_many(stale)
    return plan
