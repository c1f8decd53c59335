"""Where each backup has copies: `<server>/pgvault.copies.json` in the source destination.

barman-cloud lists only `<server>/base/` and `<server>/wals/`, so it never sees this file
(like `pgvault.keys` beside it). Targets are recorded as `core.urls.public_url`: the
place without any credential, so no key in a copy URL ever reaches the record. Written
after a backup is sealed on the target, never before: a listed copy is a complete one.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from core.errors import ObjectNotFound, PgvaultError
from core.storage import ObjectStore

log = logging.getLogger("pgvault.copy")

COPIES_FILE = "pgvault.copies.json"
FORMAT = 1


def copies_key(server: str) -> str:
    return f"{server}/{COPIES_FILE}"


def read_copies(store: ObjectStore, server: str) -> dict[str, tuple[str, ...]]:
    """Backup ID -> the public URLs of its copies; {} when none was ever recorded."""
    try:
        raw = store.get_bytes(copies_key(server))
    except ObjectNotFound:
        return {}
    try:
        data = json.loads(raw)
        entries = data["copies"]
        return {
            str(backup_id): tuple(str(c["url"]) for c in copies)
            for backup_id, copies in entries.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring %s: not a copies record (%s)", copies_key(server), exc)
        return {}


def record_copy(store: ObjectStore, server: str, backup_ids: list[str], url: str) -> None:
    """Add `url` to the copies of `backup_ids` (read, merge, write: copies are rare)."""
    try:
        raw = store.get_bytes(copies_key(server))
        data = json.loads(raw)
        entries = dict(data.get("copies", {}))
    except ObjectNotFound:
        entries = {}
    except (ValueError, AttributeError):
        entries = {}  # unreadable: rewritten whole rather than blocking every copy
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for backup_id in backup_ids:
        copies = [c for c in entries.get(backup_id, []) if c.get("url") != url]
        copies.append({"url": url, "copied": now})
        entries[backup_id] = copies
    body = json.dumps({"format": FORMAT, "copies": entries}, indent=2, sort_keys=True)
    try:
        store.put_bytes(copies_key(server), body.encode() + b"\n")
    except PgvaultError as exc:
        # The copy itself is complete and verified; only the note of it failed.
        log.warning("backups copied, but the copies record was not written: %s", exc)
