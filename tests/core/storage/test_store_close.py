"""A closed store has closed its connections: a long-lived process (the console refreshing
its destinations, the protection agent) opens stores again and again for days.

The SDK clients (boto3, azure-storage-blob, google-cloud-storage) sit in reference cycles:
one merely dropped keeps its sockets until a full garbage collection, which a process with
a large heap runs seldom. The cycle collector is off while the stores are opened here, so
only what close() itself releases is released."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from core.storage import ObjectStore
from tests.support.destinations import TestDestination

OPENINGS = 25
#: descriptors to the store a process may gain for good meanwhile (an SDK's lazily made pool)
SLACK = 3


def _endpoint_port(dest: TestDestination) -> int | None:
    """The emulator's port, or None for a local directory."""
    endpoint = dest.config.endpoint_url or dest.env.get("STORAGE_EMULATOR_HOST") or dest.url
    return urlsplit(endpoint).port if endpoint.startswith("http") else None


def _socket_inodes_to(port: int) -> set[str]:
    """Inodes of this host's TCP sockets whose remote end is 127.0.0.1:port (or ::1)."""
    inodes: set[str] = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def _descriptors(dest: TestDestination) -> int:
    """Descriptors of this process on the destination: sockets to its emulator, files in its
    directory. Counting every descriptor failed once in CI with 4: the other threads of a test
    worker open and close their own meanwhile."""
    port = _endpoint_port(dest)
    inodes = _socket_inodes_to(port) if port is not None else set()
    held = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # closed meanwhile by another thread
            continue
        if target.startswith("socket:["):
            held += target[len("socket:[") : -1] in inodes
        elif dest.cleanup_dir is not None:
            held += target.startswith(dest.cleanup_dir)
    return held


def test_a_closed_store_keeps_no_connection(destination: TestDestination) -> None:
    with destination.store() as store:
        store.put_bytes("o", b"x")
        assert store.get_bytes("o") == b"x"  # every import and SDK cache made once
    gc.collect()
    before = _descriptors(destination)
    gc.disable()
    try:
        for _ in range(OPENINGS):
            with destination.store() as store:
                assert store.get_bytes("o") == b"x"
                assert [o.key for o in store.list_objects()] == ["o"]
        grown = _descriptors(destination) - before
    finally:
        gc.enable()
    assert grown <= SLACK, f"{grown} descriptors more after {OPENINGS} stores opened and closed"


def test_closing_a_store_closes_every_threads_connection(
    make_dest: Callable[..., TestDestination],
) -> None:
    """The WebDAV and plain-S3 (light) stores keep one connection per thread
    (core.storage.http_connections); close() closed only the calling thread's: those of the
    other threads stayed open as long as the closed store object lived (a console or an agent
    holding it) and the threads did. Shown on WebDAV (nginx keeps connections alive; moto
    closes each one after its answer, so the light S3 store has nothing to leak there)."""
    dest = make_dest("http")
    with dest.store() as store:
        store.put_bytes("o", b"x")
    threads = 4
    with ThreadPoolExecutor(max_workers=threads) as pool:
        barrier = threading.Barrier(threads)

        def read(store: ObjectStore) -> bool:
            barrier.wait()  # a request on each worker thread, each on its kept-alive connection
            return store.exists("o")

        closed: list[ObjectStore] = []  # held: only what close() releases is released
        gc.collect()
        before = _descriptors(dest)
        gc.disable()
        try:
            for _ in range(3):
                with dest.store() as store:
                    assert list(pool.map(read, [store] * threads)) == [True] * threads
                closed.append(store)
            grown = _descriptors(dest) - before
        finally:
            gc.enable()
    assert grown <= SLACK, f"{grown} descriptors more after 3 stores used by {threads} threads"
