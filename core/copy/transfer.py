"""One object from a source store to a target store, verified on arrival.

The bytes are streamed (memory bounded by the target's chunk buffers) and hashed with
SHA-256 on the way; the stored object is then read back from the target and its size and
SHA-256 must match, or the copy fails naming the object. An object already on the target
is compared the same way: equal bytes are skipped (a rerun resumes), different bytes are
a conflict that is never overwritten. Two WAL objects whose recorded plaintext checksums
(wal-archive's `pgvault_sha256` and `pgvault_size`) agree hold the same WAL even when their
bytes differ (a server encrypted with age, archived to both through --secondary-destination,
seals each copy anew): they count as equal, as wal-archive counts them. An object of a
backup that a killed run was uploading continues that upload by chunk (core.copy.resume).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from enum import StrEnum

from core.copy.resume import CopyUpload
from core.crypto import Generation, parse_keyfile
from core.encryption import KEYFILE
from core.errors import (
    AccessDenied,
    IntegrityError,
    ObjectNotFound,
    OperationFailed,
    PgvaultError,
)
from core.progress import Reporter
from core.storage import ObjectInfo, ObjectStore, PutOptions, ResumedUpload
from core.wal.archive import META_SHA256, META_SIZE

BLOCK = 1024 * 1024


class CopyConflict(OperationFailed):
    """The target holds other bytes under a key the copy would write (exit 1)."""


class Outcome(StrEnum):
    COPIED = "copied"
    SKIPPED = "skipped"  # already on the target with the same size and SHA-256


@dataclass(frozen=True)
class Copied:
    outcome: Outcome
    reused: int = 0  # bytes a killed run's upload had stored, kept


def digest(store: ObjectStore, key: str, reporter: Reporter | None = None) -> tuple[int, str]:
    """Size and SHA-256 of a stored object, read through."""
    sha = hashlib.sha256()
    size = 0
    with store.open_reader(key) as reader:
        while block := reader.read(BLOCK):
            sha.update(block)
            size += len(block)
            if reporter is not None:
                reporter.checkpoint()
    return size, sha.hexdigest()


def copy_object(
    source: ObjectStore,
    target: ObjectStore,
    key: str,
    reporter: Reporter,
    backup_prefix: str | None = None,
) -> Copied:
    """Copy `key` unless the target already holds the same bytes; verify what was written.
    An object of a backup (`backup_prefix`) continues the upload a killed run left; the
    bytes that upload had stored come back as `reused`."""
    head = source.head(key)
    existing = _head(target, key)
    if existing is not None:
        try:
            return Copied(_compare_existing(source, target, key, head, existing, reporter))
        except CopyConflict:
            if not _older_keyfile(source, target, key):
                raise
            reporter.log(
                f"{key} on {target.describe()}: an older key file of the same data keys "
                "(keys rotated or rewrapped since the last copy), replaced by the source's"
            )
    # An object of one chunk is one request: nothing to continue, no record to look for.
    chunked = backup_prefix is not None and head.size > target.chunk_size
    upload = CopyUpload(target, backup_prefix, key) if chunked and backup_prefix else None
    try:
        size, sha256, reused = _send(source, target, head, upload, reporter)
    except BaseException:
        if upload is not None:  # the writer aborted its upload: the record names nothing
            upload.forget(quietly=True)
        raise
    if upload is not None:
        upload.forget()
    expected = (size, sha256)
    if size != head.size:
        raise IntegrityError(f"{key}: read {size} bytes from the source, which lists {head.size}")
    stored = digest(target, key, reporter)
    if stored != expected:
        raise IntegrityError(
            f"{key}: the copy on {target.describe()} holds {stored[0]} bytes with SHA-256 "
            f"{stored[1]}, the source {expected[0]} bytes with {expected[1]}; copy it again"
        )
    return Copied(Outcome.COPIED, reused)


def _send(
    source: ObjectStore,
    target: ObjectStore,
    head: ObjectInfo,
    upload: CopyUpload | None,
    reporter: Reporter,
) -> tuple[int, str, int]:
    """Stream the object to the target; its size, SHA-256 and the bytes a killed run's
    upload had stored (kept, not sent again)."""
    key = head.key
    resume = upload.resumable(head.size) if upload else None
    _clear_unfinished(target, key, reporter, resume.token if resume else None)
    sha = hashlib.sha256()
    size = 0
    # The source's metadata travels with the bytes (a WAL segment's recorded SHA-256 is what
    # wal-restore and wal-archive check against).
    options = PutOptions(metadata=tuple(m for m in head.metadata if m[0].startswith("pgvault_")))
    with (
        source.open_reader(key) as reader,
        target.open_writer(key, options, _chunk_size(resume), resume) as writer,
    ):
        if upload is not None:
            upload.follow(writer, head.size)
        while block := reader.read(BLOCK):
            reporter.checkpoint()
            sha.update(block)
            size += len(block)
            writer.write(block)
            reporter.advance(len(block))
    if writer.reused_bytes:
        kept = writer.reused_bytes
        reporter.log(f"{key}: {kept} bytes a killed copy stored kept, not sent again")
    return size, sha.hexdigest(), writer.reused_bytes


def _chunk_size(resume: ResumedUpload | None) -> int | None:
    """The continued upload's (a run with another -J or bandwidth cap chose its own)."""
    return resume.chunks[0].size if resume and resume.chunks else None


def _clear_unfinished(
    target: ObjectStore, key: str, reporter: Reporter, continued: str | None
) -> None:
    """Abort what a run killed while writing `key` left open (S3 parts, GCS temporary
    objects, Azure blocks, a partial file) but the upload this run continues (`continued`):
    nothing else would ever remove that debris, billed meanwhile."""
    try:
        aborted = target.abort_uploads_of(key, keep=continued)
    except AccessDenied as exc:
        # Credentials that may write but not list uploads still copy; the debris is named.
        reporter.log(f"cannot look for unfinished uploads of {key}: {exc}", logging.WARNING)
        return
    if aborted:
        reporter.log(f"aborted {aborted} unfinished upload(s) of {key} left by an earlier run")


def _older_keyfile(source: ObjectStore, target: ObjectStore, key: str) -> bool:
    """Whether `key` is a server's key file and the target's holds no data key the source's
    lacks (every generation line of it is in the source's): `keys rotate` and `keys rewrap`
    rewrite the key file, and backups sealed to the new data key need the new file there. A
    key file holding another data key (another server's, a rotation made there) is kept."""
    server, _, name = key.rpartition("/")
    if name != KEYFILE or not server:
        return False
    try:
        ours = parse_keyfile(source.get_bytes(key).decode("utf-8"), server)
        theirs = parse_keyfile(target.get_bytes(key).decode("utf-8"), server)
    except (PgvaultError, UnicodeDecodeError):
        return False
    have = {_generation_line(g) for g in ours.generations}
    return all(_generation_line(g) in have for g in theirs.generations)


def _generation_line(generation: Generation) -> str:
    return f"{generation.number} {generation.created} {generation.recipient}"


def _same_wal(source: ObjectInfo, target: ObjectInfo) -> bool:
    ours, theirs = source.metadata_dict(), target.metadata_dict()
    recorded = ours.get(META_SHA256), ours.get(META_SIZE)
    return None not in recorded and recorded == (theirs.get(META_SHA256), theirs.get(META_SIZE))


def _head(store: ObjectStore, key: str) -> ObjectInfo | None:
    try:
        return store.head(key)
    except ObjectNotFound:
        return None


def _compare_existing(
    source: ObjectStore,
    target: ObjectStore,
    key: str,
    head: ObjectInfo,
    existing: ObjectInfo,
    reporter: Reporter,
) -> Outcome:
    if _same_wal(head, existing):
        reporter.advance(head.size)
        return Outcome.SKIPPED
    if existing.size == head.size:
        theirs = digest(target, key, reporter)
        if digest(source, key, reporter) == theirs:
            reporter.advance(head.size)
            return Outcome.SKIPPED
    raise CopyConflict(
        f"{key} already exists on {target.describe()} with other contents "
        f"({existing.size} bytes there, {head.size} in the source): not overwritten; "
        "delete it there or copy to another prefix"
    )
