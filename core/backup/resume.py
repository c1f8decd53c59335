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
remaining files into parts numbered after the kept ones. An incremental's checkpoints also
carry the block maps of their members of changed blocks, judged by
core.backup.increment_resume. The part that was uploading when the run died is continued
by chunk where the store allows it (core.backup.part_uploads).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from core.backup.lease import lease_is_dead
from core.backup.part_uploads import (
    CHECKPOINT_DIR,
    UPLOAD_DIR,
    StoredBackup,
    UploadCheckpoint,
    load_uploads,
    reusable,
    starting_at,
    upload_key,
)
from core.catalog.backup_info import FAILED, STARTED, parse
from core.catalog.chains import INCREMENT_PREFIX
from core.catalog.layout import PGVAULT_MANIFEST, parse_archive_name
from core.catalog.manifest import (
    ArchiveRecord,
    FileRecord,
    PgvaultManifest,
    load_pgvault,
    new_checksum,
)
from core.encryption import open_object
from core.errors import (
    DecryptionFailed,
    ObjectNotFound,
    OperationFailed,
    PgvaultError,
    StorageError,
)
from core.postgres.connection import ServerFacts
from core.postgres.pgdata import Tree
from core.storage import PutOptions, ResumedUpload

log = logging.getLogger("pgvault.backup")

READ_BLOCK = 4 * 1024 * 1024
__all__ = ["CHECKPOINT_DIR", "StoredBackup"]  # named here too, where the resume begins


@dataclass(frozen=True)
class PartCheckpoint:
    """A finished archive part and the files it holds (an incremental's: with block maps)."""

    archive: ArchiveRecord
    files: tuple[FileRecord, ...]
    #: an incremental's members of changed blocks: path -> [path, size, mtime, runs]
    blocks: dict[str, list[Any]] = field(default_factory=dict)


#: whether an incremental's stored member of changed blocks is what this run would store
BlocksCheck = Callable[[FileRecord, list[Any], Tree], bool]


def checkpoint_key(backup: StoredBackup, filename: str) -> str:
    return backup.key(f"{CHECKPOINT_DIR}/{filename}.json")


def write_checkpoint(backup: StoredBackup, part: PartCheckpoint, options: PutOptions) -> None:
    body = {
        "archive": asdict(part.archive),
        "files": [asdict(f) for f in part.files],
        "blocks": part.blocks,
    }
    key = checkpoint_key(backup, part.archive.filename)
    backup.put_record(key, json.dumps(body).encode(), options)


def load_checkpoints(backup: StoredBackup) -> dict[str, list[PartCheckpoint]]:
    """Every checkpoint of a backup, by archive set, in part order."""
    prefix = backup.key(CHECKPOINT_DIR) + "/"
    found: dict[str, list[PartCheckpoint]] = {}
    for info in backup.store.list_objects(prefix):
        try:
            body = json.loads(backup.get_record(info.key))
            blocks = body.get("blocks") or {}
            if not isinstance(blocks, dict):
                raise TypeError("blocks is not an object")
            part = PartCheckpoint(
                ArchiveRecord(**body["archive"]),
                tuple(FileRecord(**f) for f in body["files"]),
                {str(path): list(record) for path, record in blocks.items()},
            )
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring unreadable checkpoint %s: %s", info.key, exc)
            continue
        found.setdefault(part.archive.name, []).append(part)
    for parts in found.values():
        parts.sort(key=lambda p: p.archive.part)
    return found


def delete_checkpoints(backup: StoredBackup) -> None:
    """The records of finished parts and of parts uploading (core.backup.part_uploads)."""
    for directory in (CHECKPOINT_DIR, UPLOAD_DIR):
        prefix = backup.key(directory) + "/"
        backup.store.delete_many(info.key for info in backup.store.list_objects(prefix))


def resumable_manifest(
    backup: StoredBackup, facts: ServerFacts, compression: str | None, algorithm: str
) -> PgvaultManifest:
    """The failed backup's manifest, if a new run of this server may continue it.

    A backup still STARTED whose owner is provably gone (core.catalog.owner) counts as
    failed: it is what a SIGKILL leaves. A backup being deleted is never resumed.
    """
    store, layout, backup_id = backup.store, backup.layout, backup.backup_id
    what = f"cannot resume backup {backup_id} of server {layout.server}"
    try:
        info = parse(backup_id, store.get_bytes(layout.backup_info(backup_id)))
        raw = store.get_bytes(backup.key(PGVAULT_MANIFEST))
        manifest = load_pgvault(open_object(store, layout.server, raw, PGVAULT_MANIFEST))
    except ObjectNotFound:
        raise OperationFailed(f"{what}: it is not in the catalog") from None
    except DecryptionFailed as exc:
        # A write-only host cannot read the manifest it wrote: what it uploaded is unknown.
        raise DecryptionFailed(
            f"{what}: {exc}; resume it where the key is held (PGVAULT_ENCRYPTION_PASSPHRASE "
            "or PGVAULT_ENCRYPTION_IDENTITY in the environment), or take a new backup"
        ) from None
    except StorageError as exc:
        raise OperationFailed(f"{what}: {exc}") from None
    interrupted = (
        info.status == STARTED
        and manifest.state == "running"
        and lease_is_dead(store, layout, backup_id, manifest.lease or {})
    )
    if info.deleting:
        raise OperationFailed(
            f"{what}: its deletion has begun; run backup-delete again to finish it"
        )
    if info.status != FAILED and not interrupted:
        raise OperationFailed(f"{what}: it is {info.status}, only a FAILED backup is resumed")
    reasons = []
    if manifest.postgres.get("system_identifier") != facts.system_identifier:
        reasons.append("it is another cluster's")
    if manifest.compression != compression:
        reasons.append(f"it was compressed with {manifest.compression or 'nothing'}")
    if manifest.checksum_algorithm != algorithm:
        reasons.append(f"its files are checksummed with {manifest.checksum_algorithm}")
    if sorted(int(t["oid"]) for t in manifest.tablespaces) != sorted(
        t.oid for t in facts.tablespaces
    ):
        reasons.append("the tablespaces changed")
    if reasons:
        raise OperationFailed(f"{what}: {'; '.join(reasons)}")
    return manifest


@dataclass
class ResumePlan:
    """What a resumed run keeps of the failed one."""

    backup_id: str
    kept: dict[str, list[PartCheckpoint]] = field(default_factory=dict)
    #: by archive set: the part that was uploading, continued by chunk
    uploads: dict[str, tuple[UploadCheckpoint, ResumedUpload]] = field(default_factory=dict)

    @property
    def archives(self) -> list[ArchiveRecord]:
        return [p.archive for parts in self.kept.values() for p in parts]

    @property
    def files(self) -> list[FileRecord]:
        return [f for parts in self.kept.values() for p in parts for f in p.files]

    @property
    def blocks(self) -> dict[str, list[Any]]:
        """An incremental's kept members of changed blocks: their block maps, by path."""
        return {k: v for parts in self.kept.values() for p in parts for k, v in p.blocks.items()}

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

    def resumed_upload(self, filename: str) -> ResumedUpload | None:
        """The upload a part continues, if it is the one that was uploading."""
        for record, upload in self.uploads.values():
            if record.filename == filename:
                return upload
        return None

    def remaining(self, name: str, tree: Tree) -> Tree:
        """The tree without the files the kept parts already hold (directories stay); a
        set whose part was uploading starts where that part began, to make it again."""
        if name in self.uploads:
            started = starting_at(tree, self.uploads[name][0].first_path)
            if started is not None:  # plan_resume checked it is
                return started
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


@dataclass(frozen=True)
class FileChecks:
    """How a kept part's files are judged unchanged: checksum algorithm, pause point, and
    for an incremental the check of its members of changed blocks."""

    algorithm: str
    checkpoint: Callable[[], None]
    blocks: BlocksCheck | None = None

    def unchanged(self, record: FileRecord, part: PartCheckpoint, tree: Tree) -> bool:
        stored_map = part.blocks.get(record.path)
        if stored_map is None:
            return _unchanged(record, tree, self.algorithm, self.checkpoint)
        return self.blocks is not None and self.blocks(record, stored_map, tree)


def plan_resume(
    backup: StoredBackup,
    trees: dict[str, Tree],
    checks: FileChecks,
    reporter_log: Callable[[str], None],
) -> ResumePlan:
    """Keep each set's leading parts whose files are unchanged; delete the rest of the run."""
    plan = ResumePlan(backup.backup_id)
    for name, parts in load_checkpoints(backup).items():
        tree = trees.get(name)
        if tree is None:
            continue
        kept = _leading_kept(backup, parts, tree, checks, reporter_log)
        if kept:
            plan.kept[name] = kept
    uploads = load_uploads(backup)
    for name, record in uploads.items():
        tree = trees.get(name)
        if tree is None or record.part != plan.next_part(name):
            continue
        upload = _continuable(plan, record, tree, reporter_log)
        if upload is not None:
            plan.uploads[name] = (record, upload)
    backup.store.delete_many(
        upload_key(backup, r.filename) for n, r in uploads.items() if n not in plan.uploads
    )
    _delete_stale(backup, plan)
    return plan


def _continuable(
    plan: ResumePlan, record: UploadCheckpoint, tree: Tree, reporter_log: Callable[[str], None]
) -> ResumedUpload | None:
    """The recorded chunks of the part that was uploading that may be reused, if any."""
    upload, why = reusable(record, tree)
    started = starting_at(tree, record.first_path)
    if started is None:
        upload, why = None, f"{record.first_path} is gone"
    else:
        # Every file before the part must be in the kept parts: one that appeared since
        # would otherwise be left out of the backup.
        reused = plan.reused_paths
        before = tree.entries[: len(tree.entries) - len(started.entries)]
        new = next(
            (e for e in before if not e.is_dir and tree.manifest_prefix + e.path not in reused),
            None,
        )
        if new is not None:
            upload, why = None, f"{tree.manifest_prefix + new.path} appeared since"
    if why:
        reporter_log(f"{record.filename}: the chunks it stored are not all reused: {why}")
    return upload


def _leading_kept(
    backup: StoredBackup,
    parts: list[PartCheckpoint],
    tree: Tree,
    checks: FileChecks,
    reporter_log: Callable[[str], None],
) -> list[PartCheckpoint]:
    """The parts, from the first on, stored whole and holding only files unchanged since."""
    kept: list[PartCheckpoint] = []
    for part in parts:
        if part.archive.part != len(kept) or not _stored_whole(backup, part.archive):
            break
        changed = next((f for f in part.files if not checks.unchanged(f, part, tree)), None)
        if changed is not None:
            reporter_log(
                f"{part.archive.filename}: {changed.path} changed since, sent again "
                "from this part on"
            )
            break
        kept.append(part)
    return kept


def _stored_whole(backup: StoredBackup, archive: ArchiveRecord) -> bool:
    try:
        return backup.store.head(backup.key(archive.filename)).size == archive.size
    except PgvaultError:
        return False


def _delete_stale(backup: StoredBackup, plan: ResumePlan) -> None:
    """Everything else the failed run stored goes: parts not kept and their checkpoints."""
    stale = []
    for info in backup.store.list_objects(backup.layout.backup_prefix(backup.backup_id)):
        filename = info.key.rsplit("/", 1)[-1]
        # An incremental's sets are incremental_data..., named as barman-cloud never reads.
        increment = INCREMENT_PREFIX if filename.startswith(INCREMENT_PREFIX) else ""
        ref = parse_archive_name(filename.removeprefix(increment))
        if ref is not None and ref.part >= plan.next_part(increment + ref.name):
            stale.append(info.key)
            stale.append(checkpoint_key(backup, filename))
            stale.append(upload_key(backup, filename))
    backup.store.delete_many(stale)
    continued = frozenset(upload.token for _, upload in plan.uploads.values())
    backup.store.abort_pending_uploads(backup.layout.backup_prefix(backup.backup_id), continued)
