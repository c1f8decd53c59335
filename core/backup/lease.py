"""The lease: who is running a backup, so that one whose owner is gone can be cleaned up.

A running backup's lease (core.catalog.owner) names its process and is renewed by a
heartbeat thread while the backup runs. A later backup of the same server reaps what a dead
one left (SIGKILL, OOM, power loss): it marks it FAILED and aborts its unfinished uploads.
Listing, retention and delete judge STARTED backups with the same verdict.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import Any

from core.backup.part_uploads import StoredBackup, resumable_tokens
from core.catalog.backup_info import DONE, FAILED, STARTED, parse, serialize
from core.catalog.layout import PGVAULT_MANIFEST, ServerLayout
from core.catalog.manifest import dump_pgvault, load_pgvault
from core.catalog.owner import (
    LEASE_FILE,
    RENEW_SECONDS,
    TIMEOUT_SECONDS,
    lease_body,
    lease_key,
    owner_verdict,
    renewing,
    this_process,
)
from core.encryption import open_object, seal, write_recipient
from core.errors import PgvaultError
from core.storage import ObjectStore, open_store

log = logging.getLogger("pgvault.backup")

INTERRUPTED = "failure copying data (the pgvault process ended before the backup finished)"


def new_lease() -> dict[str, Any]:
    """This process's lease, recorded in a running backup's pgvault.json and lease object."""
    return {**this_process(), "timeout": TIMEOUT_SECONDS}


def lease_is_dead(
    store: ObjectStore, layout: ServerLayout, backup_id: str, lease: dict[str, Any]
) -> bool:
    """True only when the backup's owner is provably gone (see core.catalog.owner)."""
    return owner_verdict(store, layout, backup_id, fallback=lease).abandoned


@contextmanager
def heartbeat(
    store: ObjectStore, layout: ServerLayout, backup_id: str, lease: dict[str, Any]
) -> Iterator[None]:
    """Write the lease object, renew it every RENEW_SECONDS until the block ends, and remove
    it when the block ends without an error.

    Renewals use a store of their own: the backup's store passes every write through the
    job's pause gate, and a paused backup is alive.
    """
    with heartbeat_at(store, lease_key(layout, backup_id), lease):
        yield


@contextmanager
def heartbeat_at(store: ObjectStore, key: str, lease: dict[str, Any]) -> Iterator[None]:
    """heartbeat for the lease object at `key` (a logical backup's too)."""
    body = lease_body({k: v for k, v in lease.items() if k != "timeout"}, TIMEOUT_SECONDS)
    store.put_bytes(key, body)
    with renewing(partial(_renew, store, key, body), "pgvault-lease"):
        yield
    # Finished: the lease has nothing left to tell (a failure keeps it, for the record).
    try:
        store.delete_many([key])
    except PgvaultError as exc:
        log.warning("could not remove the lease %s: %s", key, exc)


def _renew(store: ObjectStore, key: str, body: bytes, stop: threading.Event) -> None:
    try:
        # Its own store, so that a paused or capped upload never holds a renewal back; a
        # light one where it can be (S3 with plain keys: no second boto3 client, whose
        # service models alone hold some 18 MB for the whole backup).
        own = open_store(store.location, store.config, light=True)
    except PgvaultError as exc:
        log.warning("cannot renew the lease %s: %s", key, exc)
        return
    with own:
        while not stop.wait(RENEW_SECONDS):
            try:
                own.put_bytes(key, body)
            except PgvaultError as exc:  # a missed renewal is retried; the timeout is 30x
                log.warning("could not renew the lease %s: %s", key, exc)


def reap_interrupted(store: ObjectStore, server: str) -> list[str]:
    """Clean up after backups whose owner is gone (SIGKILL, OOM, power loss).

    Unfinished uploads of DONE or FAILED backups are aborted. A STARTED pgvault backup whose
    owner is provably gone (core.catalog.owner) is marked FAILED and its uploads aborted.
    Anything else (a live owner, a barman-cloud backup still STARTED) is left alone.
    Returns the IDs of the backups cleaned up.
    """
    layout = ServerLayout(server)
    pending = _pending_uploads(store, layout)
    candidates = set(pending) | set(_started(store, layout))
    reaped = []
    for backup_id in sorted(candidates):
        if not _reapable(store, layout, backup_id, backup_id in pending):
            continue
        if backup_id in pending:
            # A part whose chunks are recorded stays for `backup --resume` to continue
            # (core.backup.part_uploads); backup-delete aborts it.
            keep = frozenset(resumable_tokens(StoredBackup(store, layout, backup_id)))
            store.abort_pending_uploads(layout.backup_prefix(backup_id), keep)
        log.warning(
            "cleaned up after interrupted backup %s (%d uploads)",
            backup_id,
            pending.get(backup_id, 0),
        )
        reaped.append(backup_id)
    return reaped


def _started(store: ObjectStore, layout: ServerLayout) -> list[str]:
    """Backups with a lease object: the ones a pgvault process ran (or runs)."""
    found = []
    for obj in store.list_objects(layout.base_prefix):
        if obj.key.endswith("/" + LEASE_FILE):
            backup_id = layout.backup_id_of(obj.key)
            if backup_id:
                found.append(backup_id)
    return found


def _pending_uploads(store: ObjectStore, layout: ServerLayout) -> dict[str, int]:
    """Unfinished uploads under the server's backups, counted by backup ID."""
    by_backup: dict[str, int] = {}
    for upload in store.list_pending_uploads(layout.base_prefix):
        backup_id = layout.backup_id_of(upload.key)
        if backup_id:
            by_backup[backup_id] = by_backup.get(backup_id, 0) + 1
    return by_backup


def _reapable(store: ObjectStore, layout: ServerLayout, backup_id: str, pending: bool) -> bool:
    """Finished with uploads pending, or STARTED by an owner that is gone (then marked FAILED
    here)."""
    try:
        info = parse(backup_id, store.get_bytes(layout.backup_info(backup_id)))
    except PgvaultError:
        return False
    if info.status != STARTED:
        return pending and info.status in (DONE, FAILED)
    try:
        raw = store.get_bytes(layout.backup_file(backup_id, PGVAULT_MANIFEST))
        manifest = load_pgvault(open_object(store, layout.server, raw, PGVAULT_MANIFEST))
    except PgvaultError:  # a host that cannot decrypt leaves it to one that can
        return False
    if manifest.state != "running" or not lease_is_dead(
        store, layout, backup_id, manifest.lease or {}
    ):
        return False
    store.put_bytes(
        layout.backup_info(backup_id),
        serialize(info.with_changes(status=FAILED, error=INTERRUPTED)),
    )
    store.put_bytes(
        layout.backup_file(backup_id, PGVAULT_MANIFEST),
        seal(
            dump_pgvault(replace(manifest, state="failed", error=INTERRUPTED)),
            write_recipient(store, layout.server),
        ),
    )
    return True
