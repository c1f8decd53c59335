"""One contract, five backends: local directory, S3 (moto), Azure (Azurite), GCS (fake-gcs),
WebDAV (nginx and WsgiDAV)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from core.errors import (
    AccessDenied,
    ContainerNotFound,
    EndpointUnreachable,
    ObjectExists,
    ObjectNotFound,
)
from core.storage import (
    CommonPrefix,
    ObjectInfo,
    ObjectStore,
    PutOptions,
    StoreConfig,
    open_store,
)
from core.storage.retry import RetryPolicy
from core.storage.s3_http import S3HttpStore
from core.urls import parse_location
from tests.support.destinations import STORE_PROVIDERS, TestDestination, make_destination
from tests.support.emulators import AZURITE_ACCOUNT, Emulator, free_port

MiB = 1024 * 1024


@pytest.fixture(params=[*STORE_PROVIDERS, "s3-light", "wsgidav"])
def destination(
    request: pytest.FixtureRequest, emulators: dict[str, Emulator]
) -> Iterator[TestDestination]:
    """Each backend, S3 through the standard library (open_store(light=True)), and WebDAV
    on WsgiDAV as well as nginx."""
    light = request.param == "s3-light"
    dest = make_destination("s3" if light else request.param, emulators)
    if light:
        dest = replace(dest, light=True)
        with dest.store() as store:  # the contract must not quietly test boto3 twice
            assert isinstance(store, S3HttpStore)
    yield dest
    dest.drop()


def _pattern(size: int, seed: int = 7) -> bytes:
    """Incompressible-looking, reproducible bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 128
        counter += 1
    return bytes(out[:size])


#: how long a part waits for a second one to be under way (ConcurrencySpy's until_overlap)
OVERLAP_WAIT = 60.0


class ConcurrencySpy:
    """Counts how many part uploads run at the same moment on the real backend.

    Each part is held back by `latency` seconds first, as a distant endpoint would. With
    `until_overlap`, parts are held until two are under way at once (at most OVERLAP_WAIT):
    a writer that keeps parts in flight shows it however long a loaded host takes to fill
    the next part, and one that serialises its parts cannot pass.
    """

    def __init__(self, store: object, latency: float = 0.05, until_overlap: bool = False) -> None:
        self.lock = threading.Lock()
        self.current = 0
        self.peak = 0
        self.calls = 0
        self.released = threading.Event()
        original = store._mpu_part  # type: ignore[attr-defined]

        def spy(*args: object, **kwargs: object) -> object:
            with self.lock:
                self.current += 1
                self.calls += 1
                self.peak = max(self.peak, self.current)
                if self.current >= 2 or not until_overlap:
                    self.released.set()
            if not self.released.wait(OVERLAP_WAIT):
                self.released.set()  # a serial writer: it fails on the peak, waiting once
            time.sleep(latency)
            try:
                return original(*args, **kwargs)
            finally:
                with self.lock:
                    self.current -= 1

        store._mpu_part = spy  # type: ignore[attr-defined]


def test_200mb_streams_up_and_down_identical_with_parts_in_flight(
    destination: TestDestination,
) -> None:
    size = 200 * MiB
    block = _pattern(4 * MiB)
    expected = hashlib.sha256()
    with destination.store(jobs=4, min_chunk_size=8 * MiB) as store:
        spy = ConcurrencySpy(store, until_overlap=True)
        with store.open_writer("big/object.bin") as writer:
            written = 0
            n = 0
            while written < size:
                piece = block[n % 7 :] + block[: n % 7]
                expected.update(piece)
                writer.write(piece)
                written += len(piece)
                n += 1
        assert spy.calls == size // (8 * MiB)
        assert spy.peak >= 2, "parts were uploaded one at a time"
        assert store.head("big/object.bin").size == size

        got = hashlib.sha256()
        total = 0
        with store.open_reader("big/object.bin") as reader:
            while chunk := reader.read(3 * MiB + 17):
                got.update(chunk)
                total += len(chunk)
        assert total == size
        assert got.hexdigest() == expected.hexdigest()
        assert store.list_pending_uploads() == []


def test_a_long_upload_holds_at_most_jobs_plus_one_chunks_and_stores_every_byte(
    destination: TestDestination,
) -> None:
    """The writer's chunk buffers are reused part after part: what it holds stays within
    (jobs + 1) chunks however long the object, and reuse never mixes two parts' bytes."""
    chunk = 5 * MiB if destination.provider == "s3" else MiB
    jobs = 2
    data = _pattern(chunk * 9 + 12345)
    with destination.store(jobs=jobs) as store:
        ConcurrencySpy(store, latency=0.02)  # parts finish after the next ones are queued
        held = []
        with store.open_writer("bounded/object.bin", chunk_size=chunk) as writer:
            view = memoryview(data)
            step = chunk // 3 + 17  # writes straddle the chunk boundaries
            for start in range(0, len(data), step):
                writer.write(view[start : start + step])
                held.append(writer.buffered_bytes)
        assert writer.parts_started == 10
        assert max(held) <= (jobs + 1) * chunk
        assert max(held) >= jobs * chunk, "parts were not kept in flight"
        assert store.get_bytes("bounded/object.bin") == data


def test_ranged_reads_return_exact_slices(destination: TestDestination) -> None:
    data = _pattern(3 * MiB + 5)
    with destination.store() as store:
        store.put_bytes("r/obj", data)
        assert store.read_range("r/obj", 0, 10) == data[:10]
        assert store.read_range("r/obj", MiB + 3, 1000) == data[MiB + 3 : MiB + 1003]
        assert store.read_range("r/obj", len(data) - 4, 100) == data[-4:]
        with store.open_reader("r/obj", start=2 * MiB) as reader:
            assert reader.read() == data[2 * MiB :]


def test_abort_leaves_no_unfinished_upload(destination: TestDestination) -> None:
    with destination.store(jobs=2) as store:
        chunk = store.min_part_size if store.min_part_size > 1 else MiB
        chunk = max(chunk, 5 * MiB) if destination.provider == "s3" else max(chunk, MiB)
        writer = store.open_writer("aborted/object.bin", chunk_size=chunk)
        writer.write(_pattern(chunk * 3 + 100))
        assert writer.parts_started >= 3
        writer.abort()
        assert not store.exists("aborted/object.bin")
        assert store.list_pending_uploads() == []

        with (
            pytest.raises(RuntimeError),
            store.open_writer("aborted/two.bin", chunk_size=chunk) as w,
        ):
            w.write(_pattern(chunk * 2 + 1))
            raise RuntimeError("the producer failed")
        assert not store.exists("aborted/two.bin")
        assert store.list_pending_uploads() == []


def test_pending_uploads_left_by_a_crash_are_listed_and_aborted(
    destination: TestDestination,
) -> None:
    with destination.store(jobs=1) as store:
        chunk = 5 * MiB if destination.provider == "s3" else MiB
        writer = store.open_writer("crashed/object.bin", chunk_size=chunk)
        writer.write(_pattern(chunk * 2 + 1))
        writer._drain(0)  # the parts are stored; the process "dies" before completing
        pending = store.list_pending_uploads("crashed/")
        assert [p.key for p in pending] == ["crashed/object.bin"]
        assert store.abort_pending_uploads("crashed/") == 1
        assert store.list_pending_uploads() == []
        assert not store.exists("crashed/object.bin")


def test_listing_goes_past_one_page_and_groups_by_delimiter(
    destination: TestDestination,
) -> None:
    with destination.store() as store:
        for i in range(23):
            store.put_bytes(f"list/a/{i:03d}", b"x" * i)
        for name in ("list/b/1", "list/b/2", "list/top"):
            store.put_bytes(name, b"y")
        keys = [
            o.key for o in store.list_entries("list/a/", page_size=5) if isinstance(o, ObjectInfo)
        ]
        assert keys == [f"list/a/{i:03d}" for i in range(23)]
        sizes = {o.key: o.size for o in store.list_objects("list/a/")}
        assert sizes["list/a/007"] == 7
        top = list(store.list_entries("list/", delimiter="/"))
        assert CommonPrefix("list/a/") in top and CommonPrefix("list/b/") in top
        assert [o.key for o in top if isinstance(o, ObjectInfo)] == ["list/top"]


def test_tags_and_storage_class(destination: TestDestination) -> None:
    storage_class = {
        "file": "COLD",
        "s3": "STANDARD_IA",
        "azure": "Cool",
        "gcs": "NEARLINE",
        "http": "COLD",
    }[destination.provider]
    tags = (("backup", "yes"), ("server", "pg1"))
    with destination.store() as store:
        store.put_bytes("t/obj", b"tagged", PutOptions(tags=tags, storage_class=storage_class))
        assert store.get_tags("t/obj") == dict(tags)
        assert (store.head("t/obj").storage_class or "").lower() == storage_class.lower()
        store.set_tags("t/obj", {"kept": "forever"})
        assert store.get_tags("t/obj") in ({"kept": "forever"}, {**dict(tags), "kept": "forever"})
        with store.open_writer("t/multi", PutOptions(tags=tags), chunk_size=5 * MiB) as writer:
            writer.write(_pattern(11 * MiB))
        assert store.get_tags("t/multi") == dict(tags)


def test_batch_delete_removes_everything_and_ignores_missing(
    destination: TestDestination,
) -> None:
    with destination.store() as store:
        keys = [f"del/{i:03d}" for i in range(30)]
        for key in keys:
            store.put_bytes(key, b"z")
        store.put_bytes("keep/me", b"k")
        store.delete_many([*keys, "del/never-existed"])
        assert list(store.list_objects("del/")) == []
        assert store.exists("keep/me")


def test_if_absent_refuses_to_overwrite_and_keeps_the_original(
    destination: TestDestination,
) -> None:
    with destination.store() as store:
        store.put_bytes("once/obj", b"original", PutOptions(if_absent=True))
        with pytest.raises(ObjectExists):
            store.put_bytes("once/obj", b"different", PutOptions(if_absent=True))
        assert store.get_bytes("once/obj") == b"original"
        store.put_bytes("once/obj", b"overwritten")
        assert store.get_bytes("once/obj") == b"overwritten"


def test_missing_objects_and_missing_buckets(
    destination: TestDestination, make_dest: object
) -> None:
    with destination.store() as store:
        store.check()
        with pytest.raises(ObjectNotFound):
            store.get_bytes("no/such/object")
        with pytest.raises(ObjectNotFound):
            store.head("no/such/object")
    missing = make_dest(destination.provider, create=False)  # type: ignore[operator]
    with missing.store() as store, pytest.raises(ContainerNotFound):
        store.check()


@pytest.mark.parametrize("provider", ["s3", "azure", "gcs"])
def test_unreachable_endpoint_fails_fast_as_a_connection_error(
    provider: str, emulators: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    fast = RetryPolicy(attempts=2, base=0.01, cap=0.02)
    if provider == "s3":
        store = open_store(
            parse_location("s3://bucket/p"), StoreConfig(endpoint_url=dead, retry=fast)
        )
    elif provider == "azure":
        monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
        monkeypatch.setenv("AZURE_STORAGE_KEY", "a2V5")
        store = open_store(
            parse_location(f"{dead}/{AZURITE_ACCOUNT}/ctr/p"), StoreConfig(retry=fast)
        )
    else:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", dead)
        store = open_store(parse_location("gs://bucket/p"), StoreConfig(retry=fast))
    started = time.monotonic()
    with pytest.raises(EndpointUnreachable):
        store.check()
    assert time.monotonic() - started < 30


def test_wrong_key_is_refused_by_azurite(
    emulators: dict, make_dest: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = make_dest("azure")  # type: ignore[operator]
    good = emulators["azure"].env["AZURE_STORAGE_CONNECTION_STRING"]
    wrong = good.replace("AccountKey=Eby8", "AccountKey=Xby8")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", wrong)
    with dest.store() as store:
        with pytest.raises(AccessDenied) as caught:
            store.check()
        assert "Xby8" not in str(caught.value)
        with pytest.raises(AccessDenied):
            store.put_bytes("x", b"y")


def test_a_gated_ranged_read_passes_the_gate_per_piece_and_holds_the_range_once(
    destination: TestDestination,
) -> None:
    import tracemalloc

    from core.storage.readers import GATED_READ

    data = _pattern(8 * MiB + 5)
    start, length = MiB - 1, 6 * MiB + 7
    expected = data[start : start + length]

    def peak_of_read(store: ObjectStore) -> int:
        tracemalloc.start()
        try:
            got = store.read_range("g/obj", start, length)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert got == expected
        return peak

    with destination.store() as store:
        store.put_bytes("g/obj", data)
        ungated = peak_of_read(store)
        calls: list[int] = []
        store.gate = lambda: calls.append(1)
        gated = peak_of_read(store)
    assert calls
    if destination.provider not in ("azure", "gcs"):
        # A streamed body stops within one piece when its job pauses (Azure's and
        # GCS's SDKs have downloaded a range this size by the time it opens).
        assert len(calls) >= length // GATED_READ
    # The pieces are not joined at the end, which held the range twice.
    assert gated < ungated + length // 2, f"peak {gated} gated, {ungated} not"


def test_a_cancel_raised_by_the_gate_stops_an_upload_and_is_not_retried(
    destination: TestDestination,
) -> None:
    from core.errors import Cancelled

    with destination.store(jobs=2) as store:
        calls = []

        def gate() -> None:
            calls.append(1)
            if len(calls) > 20:
                raise Cancelled("cancelled by the operator")

        store.gate = gate
        chunk = 5 * MiB
        with pytest.raises(Cancelled), store.open_writer("gated/obj", chunk_size=chunk) as writer:
            writer.write(_pattern(3 * chunk))
        assert not store.exists("gated/obj")
        assert store.list_pending_uploads() == []
        assert len(calls) < 3 * chunk // (64 * 1024)  # it stopped early, without retrying


def test_prefetching_reader_returns_the_object_in_order(destination: TestDestination) -> None:
    data = _pattern(21 * MiB + 3)
    with destination.store(jobs=3) as store:
        store.put_bytes("pre/obj", data)
        with store.open_prefetching_reader("pre/obj", part_size=4 * MiB) as reader:
            got = bytearray()
            while chunk := reader.read_chunk():
                got += chunk
        assert bytes(got) == data
        with store.open_prefetching_reader("pre/obj", part_size=5 * MiB, jobs=2) as reader:
            assert reader.read(7) == data[:7]
            assert reader.read() == data[7:]


def test_the_meter_counts_each_byte_sent_and_received_once(
    destination: TestDestination,
) -> None:
    metered: list[int] = []
    with destination.store(jobs=2) as store:
        store.meter = metered.append  # list.append is atomic: parts run on several threads
        with store.open_writer("meter/multipart", chunk_size=5 * MiB) as writer:
            writer.write(_pattern(12 * MiB + 1))
        store.put_bytes("meter/small", _pattern(1000))
        assert sum(metered) == 12 * MiB + 1 + 1000
        metered.clear()
        assert len(store.get_bytes("meter/small")) == 1000
        with store.open_prefetching_reader("meter/multipart", part_size=4 * MiB) as reader:
            while reader.read_chunk():
                pass
        assert sum(metered) == 12 * MiB + 1 + 1000


def test_a_prefix_whose_objects_are_all_deleted_is_no_longer_listed(
    destination: TestDestination,
) -> None:
    """Directories and collections a delete leaves behind are not common prefixes."""
    with destination.store() as store:
        for key in ("gone/a/1", "gone/a/deeper/2", "gone/b/3"):
            store.put_bytes(key, b"x")
        store.delete_many(["gone/a/1", "gone/a/deeper/2"])
        top = list(store.list_entries("gone/", delimiter="/"))
        assert top == [CommonPrefix("gone/b/")]
        assert [o.key for o in store.list_objects("gone/")] == ["gone/b/3"]


def test_a_prefix_is_not_an_object(destination: TestDestination) -> None:
    """A directory or collection (with or without its slash) is not found as an object."""
    with destination.store() as store:
        store.put_bytes("dir/inner/obj", b"x")
        for name in ("dir", "dir/inner"):
            assert not store.exists(name)
            with pytest.raises(ObjectNotFound):
                store.get_bytes(name)
