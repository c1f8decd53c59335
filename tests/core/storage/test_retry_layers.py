"""The store's retry policy is the only retry layer: a failing request is sent `attempts`
times, not once per attempt of every layer (boto3 sent 72 GETs for one failing read)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from core.errors import PgvaultError
from core.storage import ObjectStore, open_store
from core.storage.retry import RetryPolicy
from core.urls import parse_location
from tests.support.destinations import TestDestination
from tests.support.emulators import Emulator
from tests.support.fault_proxy import Fault, FaultProxy, Script, Step, anything, through_proxy

ATTEMPTS = 3


def _store_through(
    dest: TestDestination, emulators: dict[str, Emulator], proxy: FaultProxy
) -> tuple[TestDestination, ObjectStore]:
    via = through_proxy(dest, emulators, proxy)
    config = replace(via.config, retry=RetryPolicy(attempts=ATTEMPTS, base=0.01, cap=0.02))
    return via, open_store(parse_location(via.url), config)


@pytest.mark.parametrize("provider", ["s3", "azure", "gcs"])
@pytest.mark.parametrize("fault", [Fault.UNAVAILABLE, Fault.RESET])
def test_a_failing_read_is_sent_once_per_attempt(
    provider: str,
    fault: Fault,
    make_dest: Callable[..., TestDestination],
    emulators: dict[str, Emulator],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dest = make_dest(provider)
    with dest.store() as store:
        store.put_bytes("k", b"x" * 1000)
    with FaultProxy(emulators[provider].port, Script([Step(anything, fault, 10_000)])) as proxy:
        for name, value in through_proxy(dest, emulators, proxy).env.items():
            monkeypatch.setenv(name, value)
        via, store = _store_through(dest, emulators, proxy)
        with store, pytest.raises(PgvaultError) as failure:
            store.get_bytes("k")
        assert "k" in str(failure.value), via
        # (google-cloud-storage may look the bucket up once besides: not a retry)
        reads = [path for _, path, _ in proxy.seen if "pfx%2Fk" in path or "pfx/k" in path]
        assert len(reads) == ATTEMPTS, proxy.seen
