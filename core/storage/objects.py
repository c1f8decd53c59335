"""What the stores hold and report: object and listing entries, write options, tags."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from core.errors import InputError

MAX_TAGS = 10
_METADATA_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object as a listing or head reports it."""

    key: str
    size: int
    modified: datetime | None = None
    etag: str | None = None
    storage_class: str | None = None
    #: user metadata written with PutOptions.metadata (filled by head(), not by listings)
    metadata: tuple[tuple[str, str], ...] = ()
    #: S3 Object Lock of the current version (head() on S3 only): mode, retain-until, hold
    lock_mode: str | None = None
    locked_until: datetime | None = None
    legal_hold: bool = False

    def metadata_dict(self) -> dict[str, str]:
        return dict(self.metadata)


@dataclass(frozen=True)
class CommonPrefix:
    """A 'directory' in a delimited listing; prefix ends with the delimiter."""

    prefix: str


@dataclass(frozen=True)
class StoredChunk:
    """One part of a multipart upload the store confirmed: what a later run may reuse."""

    number: int  # 1-based, as the store numbers parts
    size: int
    sha256: str  # of the part's bytes, to prove a regenerated part is the same
    receipt: object  # what completing the upload needs for this part (JSON-able)


@dataclass(frozen=True)
class ResumedUpload:
    """An unfinished upload a new writer continues: its token and the parts recorded."""

    token: str  # the backend's handle for the upload, as _mpu_token gave it
    chunks: tuple[StoredChunk, ...]


@dataclass(frozen=True)
class PendingUpload:
    """An upload that was started and neither completed nor aborted."""

    key: str
    upload_id: str
    started: datetime | None = None


@dataclass(frozen=True)
class PutOptions:
    """Per-object write options: tags, storage class or tier, no-overwrite, and metadata.

    Metadata keys are lowercase letters, digits and underscores (valid on every provider:
    S3 lowercases them, Azure wants identifiers); values are ASCII. Unlike tags they are
    returned by head() and do not count towards the ten-tag limit.
    """

    tags: tuple[tuple[str, str], ...] = ()
    storage_class: str | None = None
    if_absent: bool = False
    metadata: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for key, value in self.metadata:
            if not _METADATA_KEY.match(key) or not value.isascii():
                raise InputError(f"invalid object metadata {key!r}={value!r}")

    def tag_dict(self) -> dict[str, str]:
        return dict(self.tags)

    def metadata_dict(self) -> dict[str, str]:
        return dict(self.metadata)


#: no tags, class, condition or metadata: how most objects are written
PLAIN = PutOptions()


def validate_tags(tags: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """barman-cloud's rule: at most ten tags with unique, non-empty keys."""
    result = tuple(tags)
    keys = [k for k, _ in result]
    if len(result) > MAX_TAGS:
        raise InputError(f"at most {MAX_TAGS} tags are allowed, got {len(result)}")
    if len(set(keys)) != len(keys):
        raise InputError("tag keys must be unique")
    if any(not k for k in keys):
        raise InputError("tag keys must not be empty")
    return result
