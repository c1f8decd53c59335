"""GCS continues an upload from its part objects under .pgvault-tmp/: a part is kept only
while the bucket holds it at the recorded generation and CRC32C, a compose tree (more than
32 parts) is built from kept and new parts alike, and nothing of the upload stays behind
(fake-gcs-server)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from core.storage import ObjectStore, ResumedUpload
from core.storage.gcs import TMP_DIR, GcsStore
from tests.core.storage.test_resumed_upload import KEY, _interrupted, _pattern, _resume
from tests.support.destinations import TestDestination, make_destination
from tests.support.emulators import Emulator

KiB = 1024
SMALL = 256 * KiB  # GCS's smallest part here: many parts from a small object


@pytest.fixture
def gcs(emulators: dict[str, Emulator]) -> Iterator[TestDestination]:
    dest = make_destination("gcs", emulators)
    yield dest
    dest.drop()


def _tmp_objects(store: ObjectStore) -> list[str]:
    assert isinstance(store, GcsStore)
    prefix = store.key(TMP_DIR) + "/"
    return [b.name for b in store._client.list_blobs(store._bucket, prefix=prefix)]


def test_a_part_stored_again_since_the_record_is_sent_again(
    gcs: TestDestination, caplog: pytest.LogCaptureFixture
) -> None:
    chunk = 5 * 1024 * KiB
    data = _pattern(4 * chunk + 99, seed=11)
    with gcs.store() as store:
        resume = _interrupted(store, data[: 3 * chunk])
        assert isinstance(store, GcsStore)
        # The same bytes written again: another generation, which the record does not name.
        second = resume.chunks[1].receipt
        assert isinstance(second, dict)
        blob = store._bucket.get_blob(second["name"])
        assert blob is not None
        blob.upload_from_string(blob.download_as_bytes())
        with caplog.at_level(logging.WARNING, logger="pgvault.storage"):
            sent, reused = _resume(store, data, resume)
        assert (sent, reused) == (len(data) - chunk, chunk)
        assert "part 2 of the upload of" in caplog.text and "not as recorded" in caplog.text
        assert store.get_bytes(KEY) == data
        assert _tmp_objects(store) == []


def test_more_than_32_parts_resume_through_a_compose_tree(gcs: TestDestination) -> None:
    data = _pattern(70 * SMALL + 5, seed=12)
    with gcs.store() as store:
        resume = _interrupted(store, data[: 66 * SMALL + 100], SMALL)
        assert len(resume.chunks) == 66  # the 67th was filling when it stopped
        sent, reused = _resume(store, data, resume, SMALL)
        assert (sent, reused) == (len(data) - 66 * SMALL, 66 * SMALL)
        assert store.get_bytes(KEY) == data
        assert store.list_pending_uploads("") == [] and _tmp_objects(store) == []


def test_a_shorter_stream_leaves_no_part_behind(gcs: TestDestination) -> None:
    data = _pattern(6 * SMALL, seed=13)
    with gcs.store() as store:
        resume = _interrupted(store, data, SMALL)
        sent, reused = _resume(store, data[: 2 * SMALL + 1], resume, SMALL)
        assert (sent, reused) == (1, 2 * SMALL)
        assert store.get_bytes(KEY) == data[: 2 * SMALL + 1]
        assert _tmp_objects(store) == []


def test_the_upload_of_another_object_is_not_continued(gcs: TestDestination) -> None:
    data = _pattern(3 * SMALL, seed=14)
    with gcs.store() as store:
        other = _interrupted(store, data, SMALL)  # an upload of KEY
        sent: list[int] = []
        store.meter = sent.append
        with store.open_writer("base/two/data.tar", chunk_size=SMALL, resume=other) as writer:
            writer.write(data)
        store.meter = None
        assert (sum(sent), writer.reused_bytes) == (len(data), 0)
        assert store.get_bytes("base/two/data.tar") == data
        # KEY's upload is still there, whole, for the process it belongs to.
        assert [u.key for u in store.list_pending_uploads("")] == [KEY]
        assert _resume(store, data, other, SMALL) == (0, len(data))


@pytest.mark.parametrize("token", ["../../etc", "0" * 31, "X" * 32])
def test_a_token_that_is_no_upload_id_starts_over(gcs: TestDestination, token: str) -> None:
    data = _pattern(2 * SMALL + 3, seed=15)
    with gcs.store() as store:
        resume = _interrupted(store, data[:SMALL], SMALL)
        sent, reused = _resume(store, data, ResumedUpload(token, resume.chunks), SMALL)
        assert (sent, reused) == (len(data), 0)
        assert store.get_bytes(KEY) == data
        assert [u.upload_id for u in store.list_pending_uploads("")] == [resume.token]
