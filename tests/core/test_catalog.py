"""The catalog's read side on what barman-cloud writes and on pgvault's own backups."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest

from core.catalog.backup_info import DONE, FAILED, STARTED, BackupInfo, serialize
from core.catalog.reader import Catalog
from core.errors import InputError, ObjectNotFound, StorageError
from tests.support.destinations import TestDestination
from tests.support.restore import run_barman
from tests.support.sample import archived_cluster, populate


def _put(dest: TestDestination, server: str, info: BackupInfo) -> None:
    with dest.store() as store:
        store.put_bytes(f"{server}/base/{info.backup_id}/backup.info", serialize(info))


def test_reads_a_catalog_barman_cloud_wrote(make_dest: Callable[..., TestDestination]) -> None:
    cluster, archive = archived_cluster()
    try:
        populate(cluster, rows=1000)
        dest = make_dest("s3")
        run_barman(
            "backup",
            dest,
            "--gzip",
            "--immediate-checkpoint",
            "-S",
            "1MB",
            *cluster.conninfo_args(),
            dest.url,
            "pg",
        )
    finally:
        cluster.drop()
        shutil.rmtree(archive, ignore_errors=True)
    with dest.store() as store:
        store.put_bytes("pg/base/20200101T000000/backup.info", b"not a backup.info\n")
        store.put_bytes("pg/base/20200102T000000/data.tar", b"left behind, no backup.info")
        catalog = Catalog(store, "pg")
        (info,) = catalog.backups()
        assert catalog.unreadable == ["20200101T000000"]
        assert info.status == DONE and info.server_name == "cloud"
        assert catalog.resolve("latest") == catalog.resolve("oldest") == info
        sets = catalog.archives(info)
        assert [s.name for s in sets] == ["data", *(str(t.oid) for t in info.tablespaces or ())]
        assert sets[1].tablespace is not None and sets[1].tablespace.name == "ts1"
        data = sets[0].parts
        assert len(data) > 1 and data[0].filename == "data.tar.gz"
        assert [p.ref.part for p in data] == list(range(len(data)))
        assert catalog.pgvault_manifest(info.backup_id) is None
        assert catalog.postgres_manifest(info.backup_id) is None
        store.delete_many([data[1].key])
        with pytest.raises(StorageError, match="not contiguous"):
            catalog.archives(info)


def test_resolves_ids_names_and_shortcuts(make_dest: Callable[..., TestDestination]) -> None:
    dest = make_dest("file")
    for backup_id, status, name in (
        ("20260101T000000", DONE, "first-one"),
        ("20260102T000000", FAILED, None),
        ("20260103T000000", DONE, "twice"),
        ("20260104T000000", DONE, "twice"),
        ("20260105T000000", FAILED, None),
        ("20260106T000000", STARTED, "running"),
    ):
        _put(dest, "pg", BackupInfo(backup_id, status=status, backup_name=name))
    with dest.store() as store:
        catalog = Catalog(store, "pg")
        assert [b.backup_id for b in catalog.backups()] == [
            "20260101T000000",
            "20260102T000000",
            "20260103T000000",
            "20260104T000000",
            "20260105T000000",
            "20260106T000000",
        ]
        assert catalog.resolve("latest").backup_id == "20260104T000000"  # DONE only
        assert catalog.resolve("last").backup_id == "20260104T000000"
        assert catalog.resolve("oldest").backup_id == "20260101T000000"
        assert catalog.resolve("first").backup_id == "20260101T000000"
        assert catalog.resolve("last-failed").backup_id == "20260105T000000"
        assert catalog.resolve("first-one").backup_id == "20260101T000000"
        assert catalog.resolve("running").status == STARTED
        assert catalog.resolve("20260102T000000").status == FAILED
        with pytest.raises(InputError, match="several backups"):
            catalog.resolve("twice")
        with pytest.raises(ObjectNotFound):
            catalog.resolve("20990101T000000")
        with pytest.raises(ObjectNotFound):
            catalog.resolve("nobody")
        with pytest.raises(StorageError, match="no archive for PGDATA"):
            catalog.archives(catalog.get("20260101T000000"))
    empty = Catalog(make_dest("file").store(), "pg")
    assert empty.backups() == []
    with pytest.raises(ObjectNotFound):
        empty.resolve("latest")
