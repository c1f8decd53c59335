"""A closed store has closed its connections: a long-lived process (the console refreshing
its destinations, the protection agent) opens stores again and again for days.

The SDK clients (boto3, azure-storage-blob, google-cloud-storage) sit in reference cycles:
one merely dropped keeps its sockets until a full garbage collection, which a process with
a large heap runs seldom. The cycle collector is off while the stores are opened here, so
only what close() itself releases is released."""

from __future__ import annotations

import gc
import os

from tests.support.destinations import TestDestination

OPENINGS = 25
#: descriptors a process may gain for good meanwhile (a lazily made SDK cache, a log file)
SLACK = 3


def _descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_closed_store_keeps_no_connection(destination: TestDestination) -> None:
    with destination.store() as store:
        store.put_bytes("o", b"x")
        assert store.get_bytes("o") == b"x"  # every import and SDK cache made once
    gc.collect()
    before = _descriptors()
    gc.disable()
    try:
        for _ in range(OPENINGS):
            with destination.store() as store:
                assert store.get_bytes("o") == b"x"
                assert [o.key for o in store.list_objects()] == ["o"]
        grown = _descriptors() - before
    finally:
        gc.enable()
    assert grown <= SLACK, f"{grown} descriptors more after {OPENINGS} stores opened and closed"
