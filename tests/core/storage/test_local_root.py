"""A local destination's directory is made by the first write, never by a look: listing,
reading, heading or checking a destination that does not exist leaves no trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ContainerNotFound, ObjectNotFound
from core.storage import StoreConfig, open_store
from core.urls import parse_location


def test_looking_at_a_missing_destination_creates_nothing_and_the_first_write_creates_it(
    tmp_path: Path,
) -> None:
    root = tmp_path / "not" / "yet"
    with open_store(parse_location(f"file://{root}"), StoreConfig()) as store:
        store.check()
        assert list(store.list_objects("pg1/")) == []
        with pytest.raises(ObjectNotFound):
            store.get_bytes("pg1/pgvault.keys")
        with pytest.raises(ObjectNotFound):
            store.head("pg1/backup.info")
        assert not (tmp_path / "not").exists()

        store.put_bytes("pg1/x", b"x")
        assert (root / "pg1" / "x").read_bytes() == b"x"


def test_a_destination_under_a_file_is_no_container(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with open_store(parse_location(f"file://{tmp_path}/file/dest"), StoreConfig()) as store:
        with pytest.raises(ContainerNotFound, match="a part of its path is a file"):
            list(store.list_objects(""))
        with pytest.raises(ContainerNotFound, match="a part of its path is a file"):
            store.check()
