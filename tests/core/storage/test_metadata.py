"""Object metadata (PutOptions.metadata): written with the object, returned by head()."""

from __future__ import annotations

import pytest

from core.errors import InputError, ObjectExists
from core.storage import PutOptions
from tests.support.destinations import TestDestination

MiB = 1024 * 1024
META = (("pgvault_sha256", "ab" * 32), ("pgvault_size", "16777216"))


def test_metadata_round_trips_on_single_and_multipart_writes(destination: TestDestination) -> None:
    tags = (("kind", "wal"),)
    with destination.store(jobs=2) as store:
        store.put_bytes("m/small", b"payload", PutOptions(tags=tags, metadata=META))
        info = store.head("m/small")
        assert info.metadata_dict() == dict(META)
        # Metadata is not a tag, and tags are still what was asked for.
        assert store.get_tags("m/small") == dict(tags)

        with store.open_writer("m/multi", PutOptions(metadata=META), chunk_size=5 * MiB) as w:
            w.write(b"x" * (11 * MiB))
        assert store.head("m/multi").metadata_dict() == dict(META)

        store.put_bytes("m/plain", b"no metadata")
        assert store.head("m/plain").metadata == ()


def test_metadata_survives_a_tag_change(destination: TestDestination) -> None:
    with destination.store() as store:
        store.put_bytes("m/t", b"v", PutOptions(tags=(("a", "1"),), metadata=META))
        store.set_tags("m/t", {"b": "2"})
        assert store.head("m/t").metadata_dict() == dict(META)
        assert "pgvault_sha256" not in store.get_tags("m/t")


def test_a_refused_overwrite_keeps_the_original_metadata(destination: TestDestination) -> None:
    with destination.store() as store:
        store.put_bytes("m/once", b"first", PutOptions(if_absent=True, metadata=META))
        other = (("pgvault_sha256", "cd" * 32),)
        with pytest.raises(ObjectExists):
            store.put_bytes("m/once", b"second", PutOptions(if_absent=True, metadata=other))
        assert store.head("m/once").metadata_dict() == dict(META)
        assert store.get_bytes("m/once") == b"first"


@pytest.mark.parametrize("key", ["Upper", "has-dash", "1digit", ""])
def test_metadata_keys_must_be_portable(key: str) -> None:
    with pytest.raises(InputError):
        PutOptions(metadata=((key, "v"),))
