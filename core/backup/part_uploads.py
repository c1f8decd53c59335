"""Resume by chunk: the record of an archive part still uploading, and what a new run reuses.

While a part uploads, every chunk the store confirms (from the first, without gaps) is
recorded in `pgvault-upload/<part>.json`: the upload's token (S3 upload ID, a
local partial file), each chunk's size and SHA-256, how far into the tar stream the part
had got when the chunk filled, and the files that far (path, size, mtime, tar offset).
A SIGKILL leaves that record and the unfinished upload behind.

A resumed run keeps a recorded chunk only if every file it may hold still has the recorded
size and mtime; it then produces the part's stream again from the same first file and the
writer (core.storage.writer) skips a chunk only when the store still holds it as recorded
and the new bytes have the same SHA-256. So the kept prefix is byte-identical, not assumed
so; from the first chunk that differs on, the part is uploaded again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from core.archives import PartUpload
from core.catalog.layout import ServerLayout
from core.encryption import open_object, seal
from core.postgres.pgdata import Tree
from core.storage import ObjectStore, PutOptions, ResumedUpload, StoredChunk

if TYPE_CHECKING:
    from core.crypto import X25519Recipient

log = logging.getLogger("pgvault.backup")

CHECKPOINT_DIR = "pgvault-checkpoint"  # finished parts (core.backup.resume)
UPLOAD_DIR = "pgvault-upload"  # parts still uploading: apart, so a part counts once
UPLOAD_SUFFIX = ".json"


@dataclass(frozen=True)
class StoredBackup:
    """Where one backup's objects live: the store, the server's layout and the backup ID."""

    store: ObjectStore
    layout: ServerLayout
    backup_id: str
    #: an encrypted server's: its resume records are sealed like its parts (they list paths,
    #: sizes and checksums of the files)
    recipient: X25519Recipient | None = None

    def key(self, filename: str) -> str:
        return self.layout.backup_file(self.backup_id, filename)

    def put_record(self, key: str, body: bytes, options: PutOptions) -> None:
        """Store a resume record, sealed when the backup is."""
        self.store.put_bytes(key, seal(body, self.recipient), options)

    def get_record(self, key: str) -> bytes:
        """A resume record's plaintext (a sealed one needs the server's keys)."""
        return open_object(self.store, self.layout.server, self.store.get_bytes(key), key)


@dataclass(frozen=True)
class CoveredFile:
    """A file of the part's tar stream: where its header starts, and what it was."""

    path: str  # manifest path
    size: int
    mtime: float
    start: int  # tar offset of its header in the part


@dataclass(frozen=True)
class ChunkMark:
    """A stored chunk, and the tar offset the part had reached when it filled (at least
    the end of the tar bytes it holds, compressed or not)."""

    chunk: StoredChunk
    tar_end: int


@dataclass(frozen=True)
class UploadCheckpoint:
    """A part being uploaded: its upload and the chunks the store confirmed, in order."""

    filename: str
    name: str  # the archive set
    part: int
    token: str
    first_path: str | None  # the part's first file (None: the set's first part)
    chunks: tuple[ChunkMark, ...]
    files: tuple[CoveredFile, ...]


def upload_key(backup: StoredBackup, filename: str) -> str:
    return backup.key(f"{UPLOAD_DIR}/{filename}{UPLOAD_SUFFIX}")


def write_upload(backup: StoredBackup, record: UploadCheckpoint, options: PutOptions) -> None:
    body = asdict(record)
    backup.put_record(upload_key(backup, record.filename), json.dumps(body).encode(), options)


def _parse(raw: bytes) -> UploadCheckpoint:
    body = json.loads(raw)
    chunks = tuple(ChunkMark(StoredChunk(**c["chunk"]), int(c["tar_end"])) for c in body["chunks"])
    files = tuple(CoveredFile(**f) for f in body["files"])
    return UploadCheckpoint(
        filename=str(body["filename"]),
        name=str(body["name"]),
        part=int(body["part"]),
        token=str(body["token"]),
        first_path=body["first_path"],
        chunks=chunks,
        files=files,
    )


def load_uploads(backup: StoredBackup) -> dict[str, UploadCheckpoint]:
    """Every upload record of a backup, by archive set (one part uploads at a time)."""
    prefix = backup.key(UPLOAD_DIR) + "/"
    found: dict[str, UploadCheckpoint] = {}
    for info in backup.store.list_objects(prefix):
        if not info.key.endswith(UPLOAD_SUFFIX):
            continue
        try:
            record = _parse(backup.get_record(info.key))
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring unreadable upload record %s: %s", info.key, exc)
            continue
        if record.name not in found or found[record.name].part < record.part:
            found[record.name] = record
    return found


def resumable_tokens(backup: StoredBackup) -> set[str]:
    """The uploads a resumed run may continue: left alone by the clean-up of a dead run."""
    return {record.token for record in load_uploads(backup).values()}


def reusable(record: UploadCheckpoint, tree: Tree) -> tuple[ResumedUpload | None, str]:
    """The recorded chunks, from the first, whose files are unchanged (size and mtime) in
    the walked tree; with why the rest is not kept (empty when all is)."""
    now = {tree.manifest_prefix + e.path: (e.size, e.mtime) for e in tree.entries}
    kept: list[StoredChunk] = []
    reason = ""
    for mark in record.chunks:
        if mark.chunk.number != len(kept) + 1:
            reason = f"chunk {len(kept) + 1} was never recorded"
            break
        changed = next(
            (
                f
                for f in record.files
                if f.start < mark.tar_end and now.get(f.path) != (f.size, f.mtime)
            ),
            None,
        )
        if changed is not None:
            reason = f"{changed.path} changed since"
            break
        kept.append(mark.chunk)
    if not kept:
        return None, reason or "no chunk was recorded"
    return ResumedUpload(record.token, tuple(kept)), reason


def starting_at(tree: Tree, first_path: str | None) -> Tree | None:
    """The tree from the entry a part began with (None: that file is gone)."""
    if first_path is None:
        return tree
    for index, entry in enumerate(tree.entries):
        if tree.manifest_prefix + entry.path == first_path:
            return Tree(tree.root, tree.manifest_prefix, tree.entries[index:], tree.excluded)
    return None


class ChunkRecorder:
    """A backup's PartUploads (core.archives): records each part's chunks as the store
    confirms them, and hands a part the upload it continues."""

    def __init__(
        self,
        backup: StoredBackup,
        options: PutOptions,
        continued: dict[str, ResumedUpload],
        on_reused: Callable[[str, int], None],
    ) -> None:
        self.backup = backup
        self.options = options
        self.continued = dict(continued)  # by part filename; each is continued once
        self.on_reused = on_reused

    def resumed(self, filename: str) -> ResumedUpload | None:
        return self.continued.pop(filename, None)

    def chunk_stored(self, upload: PartUpload) -> None:
        last_end = upload.chunks[-1][1]
        files = tuple(
            CoveredFile(m.manifest_path, m.size, m.mtime, m.offset - m.header_size)
            for m in upload.members
            if m.offset - m.header_size < last_end
        )
        # A later part begins with its first file (core.archives rolls over before one).
        first = upload.members[0].manifest_path if upload.ref.part and upload.members else None
        record = UploadCheckpoint(
            filename=upload.ref.filename(),
            name=upload.ref.name,
            part=upload.ref.part,
            token=upload.token,
            first_path=first,
            chunks=tuple(ChunkMark(chunk, end) for chunk, end in upload.chunks),
            files=files,
        )
        write_upload(self.backup, record, self.options)

    def reused(self, filename: str, stored_bytes: int) -> None:
        self.on_reused(filename, stored_bytes)
