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


def _entries(store: ObjectStore, server: str) -> dict[str, list[dict[str, str]]]:
    """The record as stored (backup ID -> its copies); {} when none or unreadable."""
    try:
        data = json.loads(store.get_bytes(copies_key(server)))
        return dict(data.get("copies", {}))
    except ObjectNotFound:
        return {}
    except (ValueError, AttributeError):
        return {}  # unreadable: rewritten whole rather than blocking every copy


def _write(store: ObjectStore, server: str, entries: dict[str, list[dict[str, str]]]) -> None:
    body = json.dumps({"format": FORMAT, "copies": entries}, indent=2, sort_keys=True)
    store.put_bytes(copies_key(server), body.encode() + b"\n")


def record_copy(store: ObjectStore, server: str, backup_ids: list[str], url: str) -> None:
    """Add `url` to the copies of `backup_ids` (read, merge, write: copies are rare)."""
    entries = _entries(store, server)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for backup_id in backup_ids:
        copies = [c for c in entries.get(backup_id, []) if c.get("url") != url]
        copies.append({"url": url, "copied": now})
        entries[backup_id] = copies
    try:
        _write(store, server, entries)
    except PgvaultError as exc:
        # The copy itself is complete and verified; only the note of it failed.
        log.warning("backups copied, but the copies record was not written: %s", exc)


def forget_copies(store: ObjectStore, server: str, backup_ids: list[str]) -> None:
    """Drop the entries of backups deleted from the source: the record never lists copies of
    a backup the source no longer has (its copies elsewhere are theirs to expire)."""
    try:
        entries = _entries(store, server)
        gone = [backup_id for backup_id in backup_ids if backup_id in entries]
        if not gone:
            return
        for backup_id in gone:
            del entries[backup_id]
        _write(store, server, entries)
    except PgvaultError as exc:
        # The deletion is done; a stale entry is dropped by a later deletion or `--refresh`.
        log.warning("the copies record may still list %s: %s", ", ".join(backup_ids), exc)


def replace_copies(store: ObjectStore, server: str, kept: dict[str, tuple[str, ...]]) -> None:
    """Rewrite the record to `kept` (backup ID -> URLs), each entry's copy time preserved."""
    entries = _entries(store, server)
    result: dict[str, list[dict[str, str]]] = {}
    for backup_id, urls in kept.items():
        old = {c.get("url"): c for c in entries.get(backup_id, [])}
        copies = [old.get(url) or {"url": url} for url in urls]
        if copies:
            result[backup_id] = copies
    _write(store, server, result)
