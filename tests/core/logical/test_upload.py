"""Uploads of a running pg_dump's files: a file is followed as it grows and completed only
once finished; a stopped follower leaves no object (a real local store)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from core.logical.upload import Uploads
from core.progress import NullReporter
from core.storage import ObjectStore, StoreConfig, open_store
from core.storage.objects import PLAIN
from core.urls import parse_location


def _store(tmp_path: Path) -> ObjectStore:
    return open_store(parse_location(f"file://{tmp_path / 'dest'}"), StoreConfig())


def test_a_growing_file_is_uploaded_whole_once_finished(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    store = _store(tmp_path)
    uploads = Uploads(store, (str(staging), "db/"), NullReporter(), (None, PLAIN, 2))
    parts = [os.urandom(700_000) for _ in range(5)]
    with open(staging / "3001.dat", "wb") as fh:
        fh.write(parts[0])
        fh.flush()
        uploads.follow("3001.dat")
        for part in parts[1:]:
            time.sleep(0.3)  # the follower reads between writes
            fh.write(part)
            fh.flush()
        assert not any(True for _ in store.list_objects("db/"))  # not complete yet
    uploads.submit("3001.dat")  # closed: finished
    (result,) = uploads.results()
    uploads.close()
    assert store.get_bytes("db/3001.dat") == b"".join(parts)
    assert result.size == sum(map(len, parts))
    assert not (staging / "3001.dat").exists()


def test_a_follower_stopped_before_the_file_is_finished_leaves_no_object(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    store = _store(tmp_path)
    uploads = Uploads(store, (str(staging), "db/"), NullReporter(), (None, PLAIN, 2))
    (staging / "3002.dat").write_bytes(os.urandom(300_000))
    uploads.follow("3002.dat")
    time.sleep(0.3)
    closer = threading.Thread(target=uploads.close)  # what a failed or cancelled dump does
    closer.start()
    closer.join(timeout=10)
    assert not closer.is_alive()
    assert [o.key for o in store.list_objects("")] == []
    assert uploads.waiting_bytes() == 0
