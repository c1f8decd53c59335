"""An unfinished multipart upload continued by a new writer: recorded parts that the new
stream reproduces are not sent again; anything that differs is sent, and the object read
back is always exactly the new stream (local directory, S3 on moto, Azure on Azurite, GCS
on fake-gcs-server)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from core.storage import ObjectStore, ResumedUpload, StoredChunk
from tests.support.destinations import TestDestination, make_destination
from tests.support.emulators import Emulator

MiB = 1024 * 1024
CHUNK = 5 * MiB  # S3's smallest part
KEY = "base/one/data.tar"


@pytest.fixture(params=["file", "s3", "azure", "gcs"])
def destination(
    request: pytest.FixtureRequest, emulators: dict[str, Emulator]
) -> Iterator[TestDestination]:
    dest = make_destination(request.param, emulators)
    yield dest
    dest.drop()


def _pattern(size: int, seed: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 128
        counter += 1
    return bytes(out[:size])


def _interrupted(store: ObjectStore, data: bytes, chunk: int = CHUNK) -> ResumedUpload:
    """Write `data` and stop without completing or aborting, as a killed process does."""
    writer = store.open_writer(KEY, chunk_size=chunk)
    stored: list[StoredChunk] = []
    writer.on_chunk = stored.append
    writer.write(data)
    writer._drain(0)  # the parts in flight land, as they would before the kill
    token = writer.token
    assert token is not None
    handle = writer._handle
    if hasattr(handle, "fd"):  # the process's descriptor dies with it
        os.close(handle.fd)
    return ResumedUpload(token, tuple(sorted(stored, key=lambda c: c.number)))


def _resume(
    store: ObjectStore, data: bytes, resume: ResumedUpload, chunk: int = CHUNK
) -> tuple[int, int]:
    """Write `data` continuing the upload; returns the bytes sent and the bytes reused."""
    sent: list[int] = []
    store.meter = sent.append
    with store.open_writer(KEY, chunk_size=chunk, resume=resume) as writer:
        writer.write(data)
    store.meter = None
    return sum(sent), writer.reused_bytes


def test_recorded_parts_that_match_are_not_sent_again(destination: TestDestination) -> None:
    data = _pattern(6 * CHUNK + 12345, seed=1)
    with destination.store() as store:
        resume = _interrupted(store, data[: 5 * CHUNK + 100])
        assert [c.number for c in resume.chunks] == [1, 2, 3, 4, 5]
        sent, reused = _resume(store, data, resume)
        assert reused == 5 * CHUNK
        assert sent == len(data) - 5 * CHUNK
        assert store.get_bytes(KEY) == data
        assert store.list_pending_uploads("") == []


def test_a_stream_that_differs_is_sent_from_the_first_part_that_differs(
    destination: TestDestination,
) -> None:
    old = _pattern(5 * CHUNK, seed=2)
    new = old[: 2 * CHUNK + 10] + b"changed" + _pattern(CHUNK, seed=3)  # shorter than old
    with destination.store() as store:
        resume = _interrupted(store, old)
        sent, reused = _resume(store, new, resume)
        assert reused == 2 * CHUNK
        assert sent == len(new) - 2 * CHUNK
        assert store.get_bytes(KEY) == new


def test_a_record_the_store_does_not_hold_is_not_trusted(destination: TestDestination) -> None:
    data = _pattern(4 * CHUNK + 1, seed=4)
    with destination.store() as store:
        resume = _interrupted(store, data[: 3 * CHUNK])
        first, second, *rest = resume.chunks
        lying = StoredChunk(second.number, second.size, "0" * 64, second.receipt)
        sent, reused = _resume(store, data, ResumedUpload(resume.token, (first, lying, *rest)))
        assert reused == CHUNK
        assert sent == len(data) - CHUNK
        assert store.get_bytes(KEY) == data


def test_an_upload_that_is_gone_starts_over(destination: TestDestination) -> None:
    data = _pattern(3 * CHUNK + 7, seed=5)
    with destination.store() as store:
        resume = _interrupted(store, data[: 2 * CHUNK])
        assert store.abort_pending_uploads("") == 1
        sent, reused = _resume(store, data, resume)
        assert (sent, reused) == (len(data), 0)
        assert store.get_bytes(KEY) == data


def test_a_token_naming_another_file_is_refused() -> None:
    dest = make_destination("file", {})
    try:
        with dest.store() as store:
            data = _pattern(2 * CHUNK + 3, seed=6)
            resume = _interrupted(store, data[:CHUNK])
            forged = ResumedUpload("../../etc/passwd", resume.chunks)
            sent, reused = _resume(store, data, forged)
            assert (sent, reused) == (len(data), 0)
            assert store.get_bytes(KEY) == data
    finally:
        dest.drop()


def test_a_cleanup_keeps_the_uploads_it_is_told_to(destination: TestDestination) -> None:
    data = _pattern(2 * CHUNK, seed=7)
    with destination.store() as store:
        resume = _interrupted(store, data)
        assert store.abort_pending_uploads("", frozenset({resume.token})) == 0
        assert len(store.list_pending_uploads("")) == 1
        assert store.abort_pending_uploads("", frozenset({"another"})) == 1
        assert store.list_pending_uploads("") == []
