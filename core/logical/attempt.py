"""A logical backup before its `logical.json`: its lease, what a killed one left, a resume.

While it runs, a logical backup holds the same lease as a physical one (core.catalog.owner:
`pgvault-lease.json` in its directory, renewed by core.backup.lease's heartbeat). A killed
one (SIGKILL, OOM, power loss) leaves its uploaded files, the lease and maybe unfinished
multipart uploads, and never `logical.json`: it is listed STARTED while its owner may live,
ABANDONED once the owner is provably gone, and never offered for restore.

Its files cannot be used again: pg_dump's snapshot died with pg_dump, and files of two
snapshots are not one consistent dump. So a resume (`jobs resume ID`, the physical backups'
mechanism) keeps the backup ID, the request and the job's lineage, removes every object of
the failed attempt and takes a new dump on a new snapshot. The next logical backup of the
server removes abandoned attempts too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from typing import Any

from core.catalog.owner import LEASE_FILE, Verdict, judge, this_process, verdict_at
from core.errors import InputError, ObjectNotFound, OperationFailed, PgvaultError
from core.logical.layout import LogicalLayout, is_logical_id
from core.storage import ObjectInfo, ObjectStore

log = logging.getLogger("pgvault.logical")

STARTED = "STARTED"
ABANDONED = "ABANDONED"
#: a logical backup without logical.json: nothing of it can be restored
UNFINISHED = frozenset({STARTED, ABANDONED})
#: a staging directory's name (with its pgvault's PID, for the operator's eyes)
STAGING_PREFIX = "pgvault-logical-"
#: in a staging directory: its owner process, as a lease names one
STAGING_OWNER = "pgvault-owner.json"


def lease_key(layout: LogicalLayout, backup_id: str) -> str:
    return f"{layout.backup_prefix(backup_id)}{LEASE_FILE}"


@dataclass(frozen=True)
class Unfinished:
    """A logical backup directory without logical.json: running, or what a killed one left."""

    backup_id: str
    status: str  # STARTED (its owner runs, or cannot be judged) or ABANDONED
    reason: str  # the owner verdict, one line
    objects: int
    size: int


def owner(store: ObjectStore, layout: LogicalLayout, backup_id: str) -> Verdict:
    return verdict_at(store, lease_key(layout, backup_id))


def list_unfinished(store: ObjectStore, server: str) -> tuple[Unfinished, ...]:
    """Every logical backup of the server that has no logical.json, oldest first (one
    recursive listing, then each unfinished one's lease)."""
    layout = LogicalLayout(server)
    objects: dict[str, list[ObjectInfo]] = {}
    for info in store.list_objects(layout.prefix):
        backup_id = info.key[len(layout.prefix) :].split("/", 1)[0]
        if is_logical_id(backup_id):
            objects.setdefault(backup_id, []).append(info)
    found = []
    for backup_id, held in objects.items():
        if any(o.key == layout.manifest(backup_id) for o in held):
            continue
        verdict = owner(store, layout, backup_id)
        found.append(
            Unfinished(
                backup_id=backup_id,
                status=ABANDONED if verdict.abandoned else STARTED,
                reason=verdict.reason,
                objects=len(held),
                size=sum(o.size for o in held),
            )
        )
    return tuple(sorted(found, key=lambda u: u.backup_id))


def _finished(store: ObjectStore, layout: LogicalLayout, backup_id: str) -> bool:
    try:
        store.head(layout.manifest(backup_id))
    except ObjectNotFound:
        return False
    return True


def remove_attempt(store: ObjectStore, layout: LogicalLayout, backup_id: str) -> None:
    """Every object of a failed attempt: unfinished uploads aborted, the rest deleted."""
    prefix = layout.backup_prefix(backup_id)
    store.abort_pending_uploads(prefix)
    store.delete_many(o.key for o in store.list_objects(prefix))


def reap_abandoned(store: ObjectStore, server: str) -> list[str]:
    """Remove what killed logical backups of the server left; returns their IDs."""
    layout = LogicalLayout(server)
    reaped = []
    for attempt in list_unfinished(store, server):
        if attempt.status != ABANDONED:
            continue
        try:
            remove_attempt(store, layout, attempt.backup_id)
        except PgvaultError as exc:
            log.warning("could not remove abandoned logical backup %s: %s", attempt.backup_id, exc)
            continue
        log.warning(
            "removed abandoned logical backup %s (%d objects; %s)",
            attempt.backup_id,
            attempt.objects,
            attempt.reason,
        )
        reaped.append(attempt.backup_id)
    return reaped


def refuse_if_running(store: ObjectStore, layout: LogicalLayout, backup_id: str, what: str) -> None:
    """OperationFailed when the backup's lease has an owner not proven gone."""
    try:
        store.head(lease_key(layout, backup_id))
    except ObjectNotFound:
        return  # no lease: cancelled or failed in its process, or finished
    verdict = owner(store, layout, backup_id)
    if not verdict.abandoned:
        raise OperationFailed(f"{what}: it may still be running ({verdict.reason})")


def reclaim(store: ObjectStore, layout: LogicalLayout, backup_id: str) -> None:
    """Take over a failed, cancelled or killed backup's ID: refuse a finished or running one,
    then remove what its attempt left (its snapshot is gone with its pg_dump)."""
    what = f"cannot resume logical backup {backup_id} of server {layout.server}"
    if not is_logical_id(backup_id):
        raise InputError(f"{what}: not a logical backup ID")
    if _finished(store, layout, backup_id):
        raise OperationFailed(f"{what}: it is finished (logical.json exists)")
    refuse_if_running(store, layout, backup_id, what)
    remove_attempt(store, layout, backup_id)


def mark_staging(directory: str) -> None:
    """Record this process as the staging directory's owner, for a later sweep."""
    with open(os.path.join(directory, STAGING_OWNER), "w", encoding="utf-8") as fh:
        json.dump(this_process(), fh)


def sweep_staging(directory: str) -> list[str]:
    """Remove staging directories whose pgvault process is provably gone (a killed backup's):
    judged as a lease is (core.catalog.owner), so another machine's or PID namespace's
    directory in a shared one is left alone."""
    removed = []
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            if not name.startswith(STAGING_PREFIX) or os.path.islink(path):
                continue
            try:
                with open(os.path.join(path, STAGING_OWNER), encoding="utf-8") as fh:
                    recorded = json.load(fh)
            except (OSError, ValueError):
                continue  # not a backup's staging directory, or not ours to judge
            if not isinstance(recorded, dict) or not judge(recorded, None).abandoned:
                continue
            shutil.rmtree(path, ignore_errors=True)
            log.warning(
                "removed the staging directory of a killed logical backup or restore: %s", path
            )
            removed.append(path)
    return removed


def staging_prefix() -> str:
    return f"{STAGING_PREFIX}{os.getpid()}-"


def unfinished_row(u: Unfinished) -> dict[str, Any]:
    """An unfinished backup as backup-list's JSON shows it beside the finished ones."""
    return {
        "backup_id": u.backup_id,
        "name": None,
        "status": u.status,
        "kind": "logical",
        "databases": [],
        "tables": 0,
        "patterns": [],
        "begin_time": None,
        "end_time": None,
        "stored_size": u.size,
        "data_size": None,
        "compression": None,
        "globals": None,
        "server_version": None,
        "pg_dump_version": None,
        "reason": u.reason,
    }
