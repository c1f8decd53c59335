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
from tests.support.fault_proxy import (
    Fault,
    FaultProxy,
    Request,
    Script,
    Step,
    anything,
    is_listing,
    is_object_write,
    through_proxy,
)

ATTEMPTS = 3


def _store_through(
    dest: TestDestination,
    emulators: dict[str, Emulator],
    proxy: FaultProxy,
    read_timeout: int | None = None,
) -> tuple[TestDestination, ObjectStore]:
    via = through_proxy(dest, emulators, proxy)
    retry = RetryPolicy(attempts=ATTEMPTS, base=0.01, cap=0.02)
    config = replace(via.config, retry=retry, read_timeout=read_timeout)
    return via, open_store(parse_location(via.url), config)


@pytest.mark.parametrize("provider", ["s3", "azure", "gcs", "http"])
@pytest.mark.parametrize("fault", [Fault.UNAVAILABLE, Fault.RESET, Fault.TRUNCATE])
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


def _is_get(request: Request) -> bool:
    return request.method == "GET" and not is_listing(request)


@pytest.mark.parametrize("provider", ["s3", "azure", "gcs", "http"])
@pytest.mark.parametrize(
    "fault, match",
    [
        (Fault.TRUNCATE, is_listing),
        (Fault.TRUNCATE, _is_get),
        (Fault.STALL, is_listing),
        (Fault.STALL, _is_get),
        (Fault.STALL, is_object_write),
    ],
    ids=["cut-listing", "cut-download", "stalled-listing", "stalled-download", "stalled-write"],
)
def test_a_cut_or_stalled_answer_is_retried(
    provider: str,
    fault: Fault,
    match: Callable[[Request], bool],
    make_dest: Callable[..., TestDestination],
    emulators: dict[str, Emulator],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dest = make_dest(provider)
    data = bytes(range(256)) * 4000
    with dest.store() as store:
        store.put_bytes("a/k", data)
    script = Script([Step(match, fault, 2)])
    with FaultProxy(emulators[provider].port, script, stall=3.0) as proxy:
        for name, value in through_proxy(dest, emulators, proxy).env.items():
            monkeypatch.setenv(name, value)
        _, store = _store_through(dest, emulators, proxy, read_timeout=1)
        with store:
            store.put_bytes("a/written", b"w" * 1000)
            assert [info.key for info in store.list_objects("a/")] == ["a/k", "a/written"]
            assert store.get_bytes("a/k") == data
        assert script.done, proxy.seen
