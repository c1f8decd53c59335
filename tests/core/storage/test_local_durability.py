"""The local store's crash safety: new directories are fsynced into their parent, and a file
descriptor is closed exactly once whatever path an upload ends on."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from core.errors import ObjectExists
from core.storage import PutOptions, StoreConfig, open_store
from core.urls import parse_location


def _store(root: Path):  # type: ignore[no-untyped-def]
    return open_store(parse_location(f"file://{root}"), StoreConfig())


def _recording(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """Watch the os call `name` (fsync or close) and note the path of each descriptor."""
    seen: list[str] = []
    real: Callable[[int], None] = getattr(os, name)

    def watched(fd: int) -> None:
        try:
            seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            seen.append(f"<fd {fd} not open>")
        real(fd)

    monkeypatch.setattr(os, name, watched)
    return seen


def test_new_parent_directories_are_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "dest"
    root.mkdir()
    with _store(root) as store:
        synced = _recording(monkeypatch, "fsync")
        store.put_bytes("srv/base/20260101T000000/backup.info", b"status=DONE\n")
    # Each directory created is made durable by fsyncing the directory that holds it.
    for parent in (root, root / "srv", root / "srv/base"):
        assert str(parent) in synced, synced
    assert str(root / "srv/base/20260101T000000") in synced  # the rename's directory


def test_a_failed_conditional_upload_closes_its_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _store(tmp_path) as store:
        writer = store.open_writer("race/obj", PutOptions(if_absent=True), chunk_size=1024)
        writer.write(b"a" * 4096)
        store.put_bytes("race/obj", b"the winner")  # appears before the upload completes
        closed = _recording(monkeypatch, "close")
        with pytest.raises(ObjectExists):
            writer.close()
    assert not [c for c in closed if c.startswith("<fd")], closed  # no close of a closed fd
    partials = [c for c in closed if ".pgvault-partial" in c]
    assert len(partials) == 1 and Counter(closed)[partials[0]] == 1, closed
    assert (tmp_path / "race/obj").read_bytes() == b"the winner"


def test_an_object_deleted_during_a_listing_is_left_out(tmp_path: Path) -> None:
    """A part's upload marker removed while a listing runs (a backup ending): as on S3,
    the listing goes on without it instead of failing."""
    store = open_store(parse_location(f"file://{tmp_path}"), StoreConfig())
    for key in ("pg1/base/a", "pg1/base/b", "pg1/base/c"):
        store.put_bytes(key, b"x")
    listing = store.list_objects("pg1/base/")
    first = next(listing)
    os.unlink(tmp_path / "pg1" / "base" / "b")
    assert [first.key, *(o.key for o in listing)] == ["pg1/base/a", "pg1/base/c"]
