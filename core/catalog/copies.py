"""Where each backup has copies: `<server>/pgvault.copies.json` in the source destination.

barman-cloud lists only `<server>/base/` and `<server>/wals/`, so it never sees this file
(like `pgvault.keys` beside it). Targets are recorded as `core.urls.public_url`: the
place without any credential, so no key in a copy URL ever reaches the record. Written
after a backup is sealed on the target, never before: a listed copy is a complete one.
Every change is a read, merge and write under the record's own lock (`pgvault.copies.lock`,
core.catalog.lock's conditional create), so two copies ending at once both stay listed.
"""

from __future__ import annotations

import json
import logging
from contextlib import AbstractContextManager
from datetime import UTC, datetime

from core.catalog.lock import Held, short_lock
from core.errors import ObjectNotFound, PgvaultError, own_cause
from core.storage import ObjectStore

log = logging.getLogger("pgvault.copy")

COPIES_FILE = "pgvault.copies.json"
RECORD_LOCK = "pgvault.copies.lock"
FORMAT = 1
#: held for one read and one write: a holder gone this long died (its own host sees sooner)
RECORD_LOCK_TTL = 300
#: how long a change waits for another one to finish before giving up (it is only logged)
RECORD_LOCK_WAIT = 60.0


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


def _locked(store: ObjectStore, server: str, operation: str) -> AbstractContextManager[Held]:
    """The record's lock for one change, waited for while another change holds it."""
    return short_lock(store, server, operation, RECORD_LOCK, RECORD_LOCK_TTL, RECORD_LOCK_WAIT)


def _write(store: ObjectStore, server: str, entries: dict[str, list[dict[str, str]]]) -> None:
    body = json.dumps({"format": FORMAT, "copies": entries}, indent=2, sort_keys=True)
    store.put_bytes(copies_key(server), body.encode() + b"\n")


def record_copy(store: ObjectStore, server: str, backup_ids: list[str], url: str) -> str | None:
    """Add `url` to the copies of `backup_ids`; a warning when the record was not written."""
    try:
        with _locked(store, server, "copy: recording a copy"):
            entries = _entries(store, server)
            now = datetime.now(UTC).isoformat(timespec="seconds")
            for backup_id in backup_ids:
                copies = [c for c in entries.get(backup_id, []) if c.get("url") != url]
                copies.append({"url": url, "copied": now})
                entries[backup_id] = copies
            _write(store, server, entries)
    except (PgvaultError, OSError) as exc:
        # The copy itself is complete and verified; only the note of it failed (a read-only
        # source: its lock or record cannot be written).
        warning = (
            f"{', '.join(backup_ids)} copied, but the copies record of {server} was not "
            f"written: {own_cause(exc) or exc}"
        )
        return warning  # the caller says it, as its job's warning
    return None


def forget_copies(store: ObjectStore, server: str, backup_ids: list[str]) -> None:
    """Drop the entries of backups deleted from the source: the record never lists copies of
    a backup the source no longer has (its copies elsewhere are theirs to expire)."""
    try:
        if not any(backup_id in _entries(store, server) for backup_id in backup_ids):
            return  # the common case, a backup never copied: no lock taken
        with _locked(store, server, "backup-delete: forgetting copies"):
            entries = _entries(store, server)
            for backup_id in backup_ids:
                entries.pop(backup_id, None)
            _write(store, server, entries)
    except PgvaultError as exc:
        # The deletion is done; a stale entry is dropped by a later deletion or `--refresh`.
        log.warning("the copies record may still list %s: %s", ", ".join(backup_ids), exc)


def drop_copies(store: ObjectStore, server: str, gone: set[tuple[str, str]]) -> None:
    """Remove these (backup ID, URL) copies; a copy recorded meanwhile stays listed."""
    with _locked(store, server, "copy --refresh"):
        entries = _entries(store, server)
        for backup_id in {b for b, _ in gone}:
            kept = [c for c in entries.get(backup_id, []) if (backup_id, c.get("url")) not in gone]
            if kept:
                entries[backup_id] = kept
            else:
                entries.pop(backup_id, None)
        _write(store, server, entries)
