"""The server lock: resume, retention and delete of one server never interleave.

    with server_lock(store, server, "backup-delete -r 'REDUNDANCY 2'"):
        ...

The lock is an object in the destination (`<server>/pgvault-lock.json`, which barman-cloud
never reads), so every host sees it. It is created only if absent (the store's conditional
write), then read back: a store whose emulator ignores the condition still lets only the
last writer through. The holder renews it every RENEW_SECONDS; a lock the store has not seen
renewed for its `timeout` is stale (its holder died) and is taken over, one taker winning a
marker object named after the stale lock's token. Busy: ServerBusy (an OperationFailed, exit
1) naming the holder and what it runs. A lock whose holder's process is gone from this very
machine is stale at once (core.catalog.owner judges it as a backup's lease). Other short locks of a
server (the copies record's, core.catalog.copies) are the same object under another `name`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.catalog.layout import ServerLayout
from core.catalog.owner import RENEW_SECONDS, judge, this_process
from core.errors import ObjectExists, ObjectNotFound, OperationFailed, PgvaultError, ServerBusy
from core.storage import ObjectStore, PutOptions, open_store

log = logging.getLogger("pgvault.lock")

LOCK_FILE = "pgvault-lock.json"
#: a lock not renewed for this long is stale; far above S3's 15-minute clock-skew bound
TTL_SECONDS = 30 * 60
CREATE = PutOptions(if_absent=True)


@dataclass(frozen=True)
class Held:
    """A lock as read from the store: its body and when the store last wrote it."""

    body: dict[str, Any]
    modified: datetime

    @property
    def token(self) -> str:
        return str(self.body.get("token", ""))

    def stale(self, now: datetime) -> bool:
        """Its holder is provably gone: its process ended on this machine, or it has not
        renewed the lock for its timeout (core.catalog.owner's rules, as for a backup)."""
        return judge({"timeout": TTL_SECONDS, **self.body}, self.modified, now).abandoned

    def describe(self) -> str:
        b = self.body
        return (
            f"{b.get('operation', 'an operation')} by pgvault process {b.get('pid')} on "
            f"{b.get('host')} since {b.get('since')}"
        )


def lock_key(server: str, name: str = LOCK_FILE) -> str:
    return f"{ServerLayout(server).server}/{name}"


def _read(store: ObjectStore, key: str) -> Held | None:
    try:
        raw = store.get_bytes(key)
        modified = store.head(key).modified or datetime.now(UTC)  # unknown: as if just renewed
    except ObjectNotFound:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    return Held(body if isinstance(body, dict) else {}, modified)


def _create(store: ObjectStore, key: str, body: bytes, token: str) -> bool:
    """Write the lock if absent; True when it is ours once read back."""
    try:
        store.put_bytes(key, body, CREATE)
    except ObjectExists:
        return False
    held = _read(store, key)
    return held is not None and held.token == token


def _take_over(store: ObjectStore, key: str, stale: Held) -> str | None:
    """Remove a stale lock if this process wins the right to; the marker's key when it did."""
    marker = f"{key}.takeover.{stale.token or 'unknown'}"
    try:
        store.put_bytes(marker, b"", CREATE)
    except ObjectExists:
        return None
    current = _read(store, key)
    if current is not None and current.token == stale.token:
        log.warning("taking over the stale server lock %s (%s)", key, stale.describe())
        store.delete_many([key])
    return marker


def acquire(
    store: ObjectStore,
    server: str,
    operation: str,
    ttl: int = TTL_SECONDS,
    name: str = LOCK_FILE,
) -> Held:
    """Take the server's lock (or its lock `name`), or raise ServerBusy naming who holds it."""
    key = lock_key(server, name)
    me = this_process()
    since = datetime.now(UTC).isoformat(timespec="seconds")
    body = {**me, "operation": operation, "since": since, "timeout": ttl}
    raw = json.dumps(body, sort_keys=True).encode()
    marker = None
    for _ in range(2):  # once more after taking over a stale lock
        if _create(store, key, raw, me["token"]):
            held = Held({**body, "takeover": marker}, datetime.now(UTC))
            return held
        current = _read(store, key)
        if current is None:
            continue  # released meanwhile
        if not current.stale(datetime.now(UTC)):
            break
        marker = _take_over(store, key, current)
        if marker is None:
            break
    current = _read(store, key)
    holder = current.describe() if current else "another pgvault process"
    raise ServerBusy(
        f"server {server} is busy: {holder} holds its lock ({store.describe()} {key}); "
        f"try again when it ends (a lock not renewed for {ttl // 60} minutes expires)"
    )


def release(store: ObjectStore, server: str, held: Held, name: str = LOCK_FILE) -> None:
    """Remove the lock if it is still ours (and the takeover marker it needed)."""
    key = lock_key(server, name)
    try:
        current = _read(store, key)
        gone = [key] if current is not None and current.token == held.token else []
        if held.body.get("takeover"):
            gone.append(str(held.body["takeover"]))
        store.delete_many(gone)
    except PgvaultError as exc:  # it expires on its own
        log.warning("could not release the server lock %s: %s", key, exc)


def _renew(store: ObjectStore, key: str, held: Held, stop: threading.Event) -> None:
    body = json.dumps({k: v for k, v in held.body.items() if k != "takeover"}, sort_keys=True)
    try:
        own = open_store(store.location, store.config)  # never behind a job's pause gate
    except PgvaultError as exc:
        log.warning("cannot renew the server lock %s: %s", key, exc)
        return
    with own:
        while not stop.wait(RENEW_SECONDS):
            try:
                current = _read(own, key)
                if current is None or current.token != held.token:
                    log.error("the server lock %s was taken from this process", key)
                    return
                own.put_bytes(key, body.encode())
            except PgvaultError as exc:  # retried at the next tick; the ttl is 30 of them
                log.warning("could not renew the server lock %s: %s", key, exc)


@contextmanager
def server_lock(
    store: ObjectStore,
    server: str,
    operation: str,
    ttl: int = TTL_SECONDS,
    name: str = LOCK_FILE,
) -> Iterator[Held]:
    """Hold the server's lock (or its lock `name`) for the block, renewed in the background."""
    held = acquire(store, server, operation, ttl, name)
    stop = threading.Event()
    renewer = threading.Thread(
        target=_renew,
        args=(store, lock_key(server, name), held, stop),
        name="pgvault-server-lock",
        daemon=True,
    )
    renewer.start()
    try:
        yield held
    finally:
        stop.set()
        renewer.join(timeout=30)
        release(store, server, held, name)


@contextmanager
def short_lock(
    store: ObjectStore, server: str, operation: str, name: str, ttl: int, wait: float
) -> Iterator[Held]:
    """A lock `name` of the server for one read-change-write (not renewed: `ttl` must exceed
    it), waited for up to `wait` seconds while another change holds it."""
    deadline = time.monotonic() + wait
    while True:
        try:
            held = acquire(store, server, operation, ttl, name)
            break
        except OperationFailed:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
    try:
        yield held
    finally:
        release(store, server, held, name)


__all__ = [
    "LOCK_FILE",
    "TTL_SECONDS",
    "Held",
    "acquire",
    "lock_key",
    "release",
    "server_lock",
    "short_lock",
]
