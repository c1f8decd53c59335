"""if_absent holds at the moment an upload completes, not only when it starts."""

from __future__ import annotations

import pytest

from core.errors import ObjectExists
from core.storage import PutOptions
from tests.support.destinations import TestDestination

MiB = 1024 * 1024


def test_a_multipart_upload_does_not_replace_an_object_that_appeared_meanwhile(
    destination: TestDestination,
) -> None:
    chunk = 5 * MiB
    with destination.store(jobs=2) as store:
        writer = store.open_writer("race/obj", PutOptions(if_absent=True), chunk_size=chunk)
        writer.write(b"a" * (2 * chunk + 1))  # the upload has started: parts are in flight
        store.put_bytes("race/obj", b"the winner")  # another writer completes first
        with pytest.raises(ObjectExists):
            writer.close()
        assert store.get_bytes("race/obj") == b"the winner"
        assert store.list_pending_uploads() == []
