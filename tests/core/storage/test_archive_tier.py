"""The archive tier of the one store interface: archive in place, reads refused, rehydrate.

Local (a separate directory), S3 on moto (GLACIER, RestoreObject polled, then a copy back to
STANDARD) and Azure on Azurite (Archive, Set Blob Tier back to Hot); GCS is refused openly.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator

import pytest

from core.errors import InputError, ObjectArchived
from core.storage import ObjectInfo, ObjectStore
from core.storage.local import LocalStore
from tests.support.destinations import TestDestination, make_destination
from tests.support.emulators import Emulator

BODY = b"a backup part" * 1000


@pytest.fixture(params=["file", "s3", "azure"])
def tiered(
    request: pytest.FixtureRequest, emulators: dict[str, Emulator]
) -> Iterator[TestDestination]:
    dest = make_destination(request.param, emulators)
    yield dest
    dest.drop()


def _listed(store: ObjectStore, key: str) -> ObjectInfo:
    return next(o for o in store.list_objects("b/") if o.key == key)


def _rehydrate_until_done(store: ObjectStore, key: str, rounds: int = 10) -> int:
    """How many calls it took for the object to be online again."""
    for attempt in range(1, rounds + 1):
        if store.rehydrate(key):
            return attempt
    raise AssertionError(f"{key} still archived after {rounds} rounds")


def test_archive_refuses_reads_until_rehydrated(tiered: TestDestination) -> None:
    with tiered.store() as store:
        store.put_bytes("b/data.tar", BODY)
        store.put_bytes("b/backup.info", b"status=DONE\n")
        assert not store.is_archived(store.head("b/data.tar"))
        store.archive("b/data.tar")
        assert store.is_archived(store.head("b/data.tar"))
        assert store.is_archived(_listed(store, "b/data.tar"))
        assert not store.is_archived(_listed(store, "b/backup.info"))
        assert [o.key for o in store.list_objects("b/")] == ["b/backup.info", "b/data.tar"]
        with pytest.raises(ObjectArchived):
            store.get_bytes("b/data.tar")
        _rehydrate_until_done(store, "b/data.tar")
        assert not store.is_archived(store.head("b/data.tar"))
        assert store.get_bytes("b/data.tar") == BODY


def test_an_archived_object_is_deleted_like_any_other(tiered: TestDestination) -> None:
    with tiered.store() as store:
        store.put_bytes("b/data.tar", BODY)
        store.archive("b/data.tar")
        store.delete_many(["b/data.tar"])
        assert list(store.list_objects("b/")) == []
        assert not store.exists("b/data.tar")


def test_local_archive_is_a_separate_directory(emulators: dict[str, Emulator]) -> None:
    dest = make_destination("file", emulators)
    try:
        with dest.store() as store:
            store.put_bytes("pg/base/1/data.tar", BODY)
            store.archive("pg/base/1/data.tar")
            assert isinstance(store, LocalStore)
            root = store.root
            assert not os.path.exists(os.path.join(root, "pg/base/1/data.tar"))
            archived = os.path.join(root, ".pgvault-archive", "pg/base/1/data.tar")
            with open(archived, "rb") as fh:
                assert fh.read() == BODY
            assert [o.key for o in store.list_objects()] == ["pg/base/1/data.tar"]
    finally:
        dest.drop()


def _moto_transition(endpoint: str, times: int | None) -> None:
    progression = {"progression": "immediate"} if times is None else {
        "progression": "manual", "times": times
    }  # fmt: skip
    body = json.dumps({"model_name": "s3::keyrestore", "transition": progression}).encode()
    urllib.request.urlopen(
        urllib.request.Request(f"{endpoint}/moto-api/state-manager/set-transition", body)
    ).read()


def test_s3_rehydration_is_polled_until_the_restore_is_done(
    emulators: dict[str, Emulator],
) -> None:
    dest = make_destination("s3", emulators)
    endpoint = emulators["s3"].endpoint
    _moto_transition(endpoint, 3)
    try:
        with dest.store() as store:
            store.put_bytes("b/data.tar", BODY)
            store.archive("b/data.tar")
            assert store.head("b/data.tar").storage_class == "GLACIER"
            # the first call asks for the restore; moto keeps it ongoing for a few HEADs
            assert _rehydrate_until_done(store, "b/data.tar") > 2
            assert store.head("b/data.tar").storage_class == "STANDARD"
            assert store.get_bytes("b/data.tar") == BODY
    finally:
        _moto_transition(endpoint, None)
        dest.drop()


def test_gcs_archive_is_refused_openly(emulators: dict[str, Emulator]) -> None:
    dest = make_destination("gcs", emulators)
    try:
        with dest.store() as store:
            store.put_bytes("b/data.tar", BODY)
            with pytest.raises(InputError, match="GCS ARCHIVE storage class is not built"):
                store.archive("b/data.tar")
            assert store.get_bytes("b/data.tar") == BODY
    finally:
        dest.drop()
