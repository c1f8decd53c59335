"""The lease: who is running a backup, so that one whose process died can be cleaned up.

A running backup's pgvault.json names its host, boot and process. A later backup of the
same server reaps what a dead one left (SIGKILL, OOM, power loss): it marks it FAILED and
aborts its unfinished uploads. Retention uses `lease_is_dead` to tell such backups apart.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import replace

from core.catalog.backup_info import DONE, FAILED, STARTED, parse, serialize
from core.catalog.layout import PGVAULT_MANIFEST, ServerLayout
from core.catalog.manifest import dump_pgvault, load_pgvault
from core.encryption import open_object, seal, write_recipient
from core.errors import PgvaultError
from core.storage import ObjectStore

log = logging.getLogger("pgvault.backup")

INTERRUPTED = "failure copying data (the pgvault process ended before the backup finished)"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """The start time of a live process (clock ticks since boot); None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            raw = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return ""  # unknown: treated as alive
    fields = raw.rsplit(")", 1)[-1].split()
    if fields[0] in ("Z", "X"):  # a zombie has finished running
        return None
    return fields[19]


def new_lease() -> dict[str, object]:
    """This process's lease, recorded in a running backup's pgvault.json."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid": pid,
        "pid_start": _process_start(pid) or "",
    }


def lease_is_dead(lease: dict[str, object]) -> bool:
    """True only when the lease was taken on this host by a process that no longer runs."""
    if lease.get("host") != socket.gethostname():
        return False
    if lease.get("boot_id") and lease.get("boot_id") != _boot_id():
        return True
    pid = lease.get("pid")
    if not isinstance(pid, int):
        return False
    started = _process_start(pid)
    return started is None or (bool(started) and started != lease.get("pid_start"))


def reap_interrupted(store: ObjectStore, server: str) -> list[str]:
    """Clean up after backups whose process died (SIGKILL, OOM, power loss).

    Unfinished uploads of DONE or FAILED backups are aborted. A STARTED pgvault backup whose
    lease names this host and a process that no longer runs is marked FAILED and its uploads
    aborted. Anything else (another host's backup, a barman-cloud backup still STARTED) is
    left alone. Returns the IDs of the backups cleaned up.
    """
    layout = ServerLayout(server)
    reaped = []
    for backup_id, uploads in sorted(_pending_uploads(store, layout).items()):
        if not _reapable(store, layout, backup_id):
            continue
        store.abort_pending_uploads(layout.backup_prefix(backup_id))
        log.warning("cleaned up after interrupted backup %s (%d uploads)", backup_id, uploads)
        reaped.append(backup_id)
    return reaped


def _pending_uploads(store: ObjectStore, layout: ServerLayout) -> dict[str, int]:
    """Unfinished uploads under the server's backups, counted by backup ID."""
    by_backup: dict[str, int] = {}
    for upload in store.list_pending_uploads(layout.base_prefix):
        backup_id = layout.backup_id_of(upload.key)
        if backup_id:
            by_backup[backup_id] = by_backup.get(backup_id, 0) + 1
    return by_backup


def _reapable(store: ObjectStore, layout: ServerLayout, backup_id: str) -> bool:
    """Finished, or STARTED by a dead pgvault process (then marked FAILED here)."""
    try:
        info = parse(backup_id, store.get_bytes(layout.backup_info(backup_id)))
    except PgvaultError:
        return False
    if info.status != STARTED:
        return info.status in (DONE, FAILED)
    try:
        raw = store.get_bytes(layout.backup_file(backup_id, PGVAULT_MANIFEST))
        manifest = load_pgvault(open_object(store, layout.server, raw, PGVAULT_MANIFEST))
    except PgvaultError:  # a host that cannot decrypt leaves it to one that can
        return False
    if manifest.state != "running" or not lease_is_dead(manifest.lease or {}):
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
