"""Who owns a running backup, and whether that owner is provably gone (the backup abandoned).

A running backup's lease (`pgvault-lease.json` in its directory, plain JSON that barman-cloud
ignores) names the process that writes it: host name, machine ID, boot ID, PID namespace,
PID and the PID's start time, and a random token. The owner rewrites it every `renew`
seconds; the store's modification time of the object is its heartbeat.

A backup is abandoned when one of these is proven:
- the lease was taken on this very machine (same machine ID, or same boot ID) in this PID
  namespace, and the machine has rebooted since or the process no longer runs;
- its heartbeat is older than the lease's `timeout` (any host: the store's clock says so).

A host name alone proves nothing: two hosts may share one (cloned VMs, containers), and each
would see the other's PID as gone. Such a lease is judged only by its heartbeat.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.catalog.layout import ServerLayout
from core.errors import ObjectNotFound, PgvaultError
from core.storage import ObjectStore

LEASE_FILE = "pgvault-lease.json"
#: how often a running backup renews its lease
RENEW_SECONDS = 60
#: a lease not renewed for this long is abandoned; far above S3's 15-minute clock-skew bound
TIMEOUT_SECONDS = 30 * 60


@contextmanager
def renewing(renew: Callable[[threading.Event], None], name: str) -> Iterator[None]:
    """Run `renew` on a daemon thread for the block; it returns once its event is set."""
    stop = threading.Event()
    renewer = threading.Thread(target=renew, args=(stop,), name=name, daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join(timeout=30)


def _read_text(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
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


def this_process() -> dict[str, Any]:
    """This process's identity, as a lease records it."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "machine_id": _read_text("/etc/machine-id"),
        "boot_id": _read_text("/proc/sys/kernel/random/boot_id"),
        "pid_ns": _pid_namespace(),
        "pid": pid,
        "pid_start": process_start(pid) or "",
        "token": uuid.uuid4().hex,
    }


@dataclass(frozen=True)
class Verdict:
    """Whether a backup's owner is provably gone, and why (one line for operators)."""

    abandoned: bool
    reason: str


def _same_machine(lease: dict[str, Any], me: dict[str, Any]) -> bool:
    """The lease was taken on this machine, in this PID namespace (so its PID means ours)."""
    if lease.get("pid_ns") and lease.get("pid_ns") != me["pid_ns"]:
        return False
    if lease.get("boot_id") and lease.get("boot_id") == me["boot_id"]:
        return True  # a boot ID is random per boot: same kernel
    machine = lease.get("machine_id")
    return bool(machine) and machine == me["machine_id"] and lease.get("host") == me["host"]


def _local_verdict(lease: dict[str, Any], me: dict[str, Any]) -> Verdict | None:
    """Proof from this machine's own process table; None when it proves nothing."""
    where = f"pgvault process {lease.get('pid')} on {lease.get('host')}"
    if lease.get("boot_id") and lease.get("boot_id") != me["boot_id"]:
        return Verdict(True, f"{where}: the host has rebooted since")
    pid = lease.get("pid")
    if not isinstance(pid, int):
        return None
    started = process_start(pid)
    if started is None or (started and started != lease.get("pid_start")):
        return Verdict(True, f"{where} is gone")
    return Verdict(False, f"{where} is running")


def judge(lease: dict[str, Any], renewed: datetime | None, now: datetime | None = None) -> Verdict:
    """The verdict on a lease whose object the store last wrote at `renewed` (None: unknown)."""
    me = this_process()
    if _same_machine(lease, me):
        local = _local_verdict(lease, me)
        if local is not None:
            return local
    if renewed is None:
        return Verdict(False, f"owned by pgvault on {lease.get('host')} (no heartbeat to judge)")
    timeout = lease.get("timeout", TIMEOUT_SECONDS)
    age = (now or datetime.now(UTC)) - renewed
    if isinstance(timeout, int | float) and age > timedelta(seconds=timeout):
        return Verdict(
            True,
            f"pgvault on {lease.get('host')} has not renewed its lease for "
            f"{int(age.total_seconds())} s (timeout {int(timeout)} s)",
        )
    return Verdict(
        False, f"pgvault on {lease.get('host')} renewed its lease {int(age.total_seconds())} s ago"
    )


def lease_key(layout: ServerLayout, backup_id: str) -> str:
    return layout.backup_file(backup_id, LEASE_FILE)


def lease_body(owner: dict[str, Any], timeout: int = TIMEOUT_SECONDS) -> bytes:
    return json.dumps({**owner, "timeout": timeout}, sort_keys=True).encode()


def read_lease(
    store: ObjectStore, layout: ServerLayout, backup_id: str
) -> tuple[dict[str, Any], datetime | None] | None:
    """The lease object and when the store last wrote it; None when there is none."""
    return read_lease_at(store, lease_key(layout, backup_id))


def read_lease_at(store: ObjectStore, key: str) -> tuple[dict[str, Any], datetime | None] | None:
    """The lease object at `key` (any kind of backup) and when the store last wrote it."""
    try:
        raw = store.get_bytes(key)
        modified = store.head(key).modified
    except ObjectNotFound:
        return None
    try:
        lease = json.loads(raw)
    except ValueError:
        return {}, modified  # torn or damaged: judged by its age alone
    return (lease if isinstance(lease, dict) else {}), modified


def owner_verdict(
    store: ObjectStore,
    layout: ServerLayout,
    backup_id: str,
    fallback: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Verdict:
    """Judge a STARTED backup's owner from its lease object, else from `fallback` (the lease
    an older pgvault kept in pgvault.json, without heartbeat)."""
    return verdict_at(store, lease_key(layout, backup_id), fallback, now)


def verdict_at(
    store: ObjectStore,
    key: str,
    fallback: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Verdict:
    """owner_verdict for the lease object at `key` (a logical backup's too)."""
    try:
        found = read_lease_at(store, key)
    except PgvaultError as exc:
        return Verdict(False, f"its lease cannot be read ({exc})")
    if found is not None:
        return judge(found[0], found[1], now)
    if fallback:
        return judge(fallback, None, now)
    return Verdict(False, "no pgvault lease: barman-cloud's, or not yet recorded")


__all__ = [
    "LEASE_FILE",
    "RENEW_SECONDS",
    "TIMEOUT_SECONDS",
    "Verdict",
    "judge",
    "lease_body",
    "lease_key",
    "owner_verdict",
    "process_start",
    "read_lease",
    "read_lease_at",
    "this_process",
    "verdict_at",
]
