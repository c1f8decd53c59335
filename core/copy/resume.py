"""Resume by chunk for a copy: an object killed mid-upload continues where the target
stopped confirming, instead of being sent again whole.

While an object of a backup uploads, the chunks the target confirms (from the first,
without gaps) are recorded on the target in the backup's directory,
`pgvault-copy-upload/<object>.json`: the upload's token and each chunk's size and SHA-256.
A run killed leaves the record and the open upload. The next run over the same object
continues that upload: the source is read again from the start and the writer
(core.storage.writer) skips a chunk only when the target still holds it as recorded and the
new bytes hash the same, so the kept prefix is proven, not assumed. The records go before
the object that makes the backup exist is written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from urllib.parse import quote

from core.errors import ObjectNotFound, PgvaultError
from core.storage import ObjectStore, ObjectWriter, ResumedUpload, StoredChunk

log = logging.getLogger("pgvault.copy")

RECORD_DIR = "pgvault-copy-upload"


def record_prefix(backup_prefix: str) -> str:
    return f"{backup_prefix}{RECORD_DIR}/"


@dataclass
class CopyUpload:
    """One object's upload on the target, recorded chunk by chunk as the target confirms."""

    target: ObjectStore
    backup_prefix: str
    key: str
    confirmed: dict[int, StoredChunk] = field(default_factory=dict)
    recorded: list[StoredChunk] = field(default_factory=list)
    reported_bytes: int = 0

    @property
    def record_key(self) -> str:
        return record_prefix(self.backup_prefix) + quote(self.key, safe="") + ".json"

    def resumable(self, size: int) -> ResumedUpload | None:
        """The upload a killed run left for this object (of `size` bytes), if it recorded one."""
        try:
            body = json.loads(self.target.get_bytes(self.record_key))
            if body["key"] != self.key or int(body["size"]) != size:
                return None
            chunks = tuple(StoredChunk(**c) for c in body["chunks"])
            return ResumedUpload(str(body["token"]), chunks)
        except ObjectNotFound:
            return None
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring unreadable copy record %s: %s", self.record_key, exc)
            return None

    def follow(self, writer: ObjectWriter, size: int) -> None:
        """Record `writer`'s chunks as the target confirms them."""
        writer.on_chunk = lambda chunk: self._stored(writer, size, chunk)

    def _stored(self, writer: ObjectWriter, size: int, chunk: StoredChunk) -> None:
        self.confirmed[chunk.number] = chunk
        while len(self.recorded) + 1 in self.confirmed:
            self.recorded.append(self.confirmed.pop(len(self.recorded) + 1))
        held = sum(c.size for c in self.recorded)
        token = writer.token
        # Every 1% of growth: a record rewritten per chunk would store O(chunks^2) bytes.
        if token is None or held <= self.reported_bytes * 1.01:
            return
        self.reported_bytes = held
        body = {
            "key": self.key,
            "size": size,
            "token": token,
            "chunks": [asdict(c) for c in self.recorded],
        }
        self.target.put_bytes(self.record_key, json.dumps(body).encode())

    def forget(self, quietly: bool = False) -> None:
        """The object is complete, or its upload aborted: its record goes."""
        if not self.reported_bytes:
            return
        try:
            self.target.delete_many([self.record_key])
        except PgvaultError as exc:
            if not quietly:
                raise
            log.warning("could not remove copy record %s: %s", self.record_key, exc)


def forget_all(target: ObjectStore, backup_prefix: str) -> None:
    """Every copy record of a backup, before the object that makes it exist is written
    (a run killed after an object completed but before its record went left one)."""
    keys = [o.key for o in target.list_objects(record_prefix(backup_prefix))]
    if keys:
        target.delete_many(keys)
