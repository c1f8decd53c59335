"""`wal-archive --secondary-destination`: a real WAL segment archived to a directory and to
moto's S3. It is acknowledged only once both hold it: an unusable secondary fails the call
(the primary keeps its copy, and the retry PostgreSQL makes finds it equal); an encrypted
server's WAL never reaches a secondary without the server's key file in plaintext."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from azure.storage.blob import BlobServiceClient

from core.crypto.keyfile import create_keyfile, serialize_keyfile
from core.crypto.keys import generate_identity
from core.encryption import KEYFILE
from core.errors import OperationFailed, PgvaultError
from core.urls import parse_location
from core.wal.archive import ArchiveSettings, WalArchiver
from core.wal.archive_command import WalArchiveRequest, archive_now
from core.wal.spool import ArchiveSpool, PusherFailed, archive_through_spool
from tests.support.destinations import TestDestination
from tests.support.pusher import PusherThread, mark_done
from tests.support.wal import WalSample, archived_bytes, archived_names, private_parent

SERVER = "pg1"


def _request(primary: TestDestination, secondary: TestDestination) -> WalArchiveRequest:
    return WalArchiveRequest(
        parse_location(primary.url),
        primary.config,
        SERVER,
        ArchiveSettings(compression="zstd"),
        secondary=parse_location(secondary.url),
        secondary_config=secondary.config,
    )


def _names(dest: TestDestination) -> dict[str, str]:
    with dest.store() as store:
        return archived_names(store, SERVER)


def test_acknowledged_only_once_both_stores_hold_the_segment(
    wal_sample: WalSample, make_dest: Callable[..., TestDestination]
) -> None:
    primary, secondary = make_dest("file"), make_dest("s3")
    broken = make_dest("s3", create=False)  # no such bucket
    name = wal_sample.segments[0]
    path = wal_sample.path(name)

    with pytest.raises(PgvaultError):
        archive_now(_request(primary, broken), path)
    assert name in _names(primary)  # stored there; the retry finds it equal

    archive_now(_request(primary, secondary), path)
    archive_now(_request(primary, secondary), path)  # idempotent, as archive_command retries
    with open(path, "rb") as fh:
        original = fh.read()
    for dest in (primary, secondary):
        with dest.store() as store:
            key = archived_names(store, SERVER)[name]
            assert archived_bytes(store, key) == original


def test_an_encrypted_server_needs_its_key_file_on_the_secondary(
    wal_sample: WalSample, make_dest: Callable[..., TestDestination]
) -> None:
    primary, secondary = make_dest("file"), make_dest("s3")
    keyfile, _ = create_keyfile(
        SERVER, None, [generate_identity().recipient()], "2026-12-04T00:00:00Z"
    )
    body = serialize_keyfile(keyfile).encode()
    with primary.store() as store:
        store.put_bytes(f"{SERVER}/{KEYFILE}", body)
    path = wal_sample.path(wal_sample.segments[0])

    with pytest.raises(OperationFailed, match="no key file"):
        archive_now(_request(primary, secondary), path)
    assert _names(secondary) == {}  # nothing in plaintext there

    with secondary.store() as store:  # what `pgvault copy` puts there
        store.put_bytes(f"{SERVER}/{KEYFILE}", body)
    archive_now(_request(primary, secondary), path)
    with secondary.store() as store:
        key = archived_names(store, SERVER)[wal_sample.segments[0]]
        assert store.get_bytes(key).startswith(b"age-encryption.org/v1")


def test_the_async_pusher_acknowledges_only_once_the_secondary_holds_the_file(
    pg_wal: str,
    wal_sample: WalSample,
    scratch_dirs: Callable[[str], str],
    make_dest: Callable[..., TestDestination],
) -> None:
    """--async: the pusher's marker (archive_command's 0) comes after both stores; a
    secondary whose container went away fails archive_command with the reason."""
    primary, secondary = make_dest("file"), make_dest("azure")
    service = BlobServiceClient.from_connection_string(
        secondary.env["AZURE_STORAGE_CONNECTION_STRING"]
    )
    spool = ArchiveSpool(os.path.join(private_parent(scratch_dirs), "pg1.secondary"))
    first, second = wal_sample.segments[:2]
    settings = ArchiveSettings("zstd", 1)
    with primary.store() as store, secondary.store() as other:
        runner = PusherThread(
            WalArchiver(store, SERVER, settings),
            spool,
            pg_wal,
            secondary=WalArchiver(other, SERVER, settings),
        )
        service.delete_container(secondary.bucket)
        # the error names the missing container
        with pytest.raises(PusherFailed, match=f"container {secondary.bucket} does not exist"):
            archive_through_spool(spool, os.path.join(pg_wal, first), 30, runner.start)
        runner.join()
        assert first in archived_names(store, SERVER)  # the primary has it; no marker though

        service.create_container(secondary.bucket)
        for name in (first, second):
            outcome = archive_through_spool(spool, os.path.join(pg_wal, name), 30, runner.start)
            assert "stored by the pusher" in outcome or "already" in outcome, outcome
            mark_done(pg_wal, name)
        runner.join()
        for archive in (store, other):
            names = archived_names(archive, SERVER)
            for name in (first, second):
                assert archived_bytes(archive, names[name]) == wal_sample.read(name)
