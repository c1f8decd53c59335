"""Stored files placed in a restore's staging: linked, never changed, links removed."""

from __future__ import annotations

import os
from pathlib import Path

from core.logical.local_files import place, same_filesystem, unlink_all
from core.storage import open_store
from core.urls import parse_location


def test_place_links_on_one_filesystem_and_unlink_all_leaves_the_stored_file(
    tmp_path: Path,
) -> None:
    stored = tmp_path / "store" / "4012.dat.gz"
    stored.parent.mkdir()
    stored.write_bytes(b"pg_dump bytes")
    os.chmod(stored, 0o444)
    staging = tmp_path / "staging"
    staging.mkdir()
    assert same_filesystem(stored, str(staging))
    target = str(staging / "4012.dat.gz")
    assert place(stored, target) is True
    assert os.stat(target).st_ino == stored.stat().st_ino
    unlink_all([target, target])  # twice: a link already gone is no error
    assert not os.path.exists(target)
    assert stored.read_bytes() == b"pg_dump bytes"
    assert stored.stat().st_nlink == 1
    assert stored.stat().st_mode & 0o777 == 0o444


def test_place_copies_where_a_link_is_refused(tmp_path: Path) -> None:
    """/dev/shm is another filesystem than the test's temporary directory."""
    stored = tmp_path / "toc.dat"
    stored.write_bytes(b"toc")
    staging = Path("/dev/shm") / f"pgvault-test-{os.getpid()}"
    staging.mkdir()
    try:
        assert not same_filesystem(stored, str(staging))
        assert place(stored, str(staging / "toc.dat")) is False
        assert (staging / "toc.dat").read_bytes() == b"toc"
        assert (staging / "toc.dat").stat().st_ino != stored.stat().st_ino
    finally:
        (staging / "toc.dat").unlink(missing_ok=True)
        staging.rmdir()


def test_the_local_store_names_its_readable_objects_files(tmp_path: Path) -> None:
    with open_store(parse_location(f"file://{tmp_path}", None)) as store:
        store.put_bytes("a/b.dat", b"x")
        store.put_bytes("a/c.dat", b"y")
        store.archive("a/c.dat")
        assert store.local_file("a/b.dat") == tmp_path / "a" / "b.dat"
        assert store.local_file("a/c.dat") is None  # archived: a read says so
        assert store.local_file("a/none.dat") is None
