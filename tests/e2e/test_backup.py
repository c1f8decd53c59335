"""`pgvault --batch backup` end to end: real PostgreSQL, the four destinations, barman-cloud.

A backup is proven by restoring it (with barman-cloud-restore wherever barman-cloud 3.19 can
read it), checking it with pg_verifybackup, starting PostgreSQL on it and comparing every
table with the original.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from core.catalog.backup_info import DONE
from core.catalog.manifest import check_postgres_manifest
from core.catalog.reader import Catalog, check_archives
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster, wait_for_recovery_end
from tests.support.restore import (
    barman_restore,
    extract_backup,
    restore_target,
    run_barman,
    start_recovered,
    verify_with_pg_verifybackup,
)
from tests.support.sample import UNLOGGED, archived_cluster, checksums, populate

SERVER = "pg15"
# Every compression at least once across the destinations (bzip2 and none below).
COMPRESSION = {"file": "zstd", "s3": "gzip", "azure": "lz4", "gcs": "snappy", "http": "bzip2"}


@dataclass
class Source:
    cluster: Cluster
    archive: str
    tables: dict[str, dict[str, tuple[int, str]]]

    def backup(self, dest: TestDestination, *flags: str, server: str = SERVER) -> str:
        result = pgvault(
            "backup",
            "--immediate-checkpoint",
            "--no-wal-check",  # archive_command copies WAL to source.archive, the restores' WAL
            *flags,
            *self.cluster.conninfo_args(),
            *dest.cli_args,
            dest.url,
            server,
            env=dest.env,
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        backup_id = result.stdout.strip()
        assert len(backup_id) == 15 and backup_id[8] == "T"
        return backup_id


@pytest.fixture(scope="module")
def source() -> Iterator[Source]:
    cluster, archive = archived_cluster()
    try:
        populate(cluster)
        yield Source(cluster, archive, checksums(cluster))
    finally:
        cluster.drop()
        shutil.rmtree(archive, ignore_errors=True)


def _restore_and_compare(
    source: Source, dest: TestDestination, backup_id: str, use_barman: bool
) -> None:
    """Restore, verify with pg_verifybackup, recover, and compare every table."""
    with dest.store() as store:
        manifest = Catalog(store, SERVER).postgres_manifest(backup_id)
        assert manifest is not None
        check_postgres_manifest(manifest)
        target = restore_target(["ts1", "ts2"])
        try:
            if use_barman:
                barman_restore(dest, SERVER, backup_id, target)
            else:
                extract_backup(store, SERVER, backup_id, target.data, target.tablespaces)
            verified = verify_with_pg_verifybackup(
                manifest, target, source.cluster.bindir, wal_dir=source.archive
            )
            assert verified.returncode == 0, verified.stdout + verified.stderr
            assert "backup successfully verified" in verified.stdout
            restored = start_recovered(target, source.cluster.bindir, source.archive)
            try:
                wait_for_recovery_end(restored)
                assert checksums(restored) == source.tables
                assert restored.one(f"select count(*) from {UNLOGGED}") == 0
                assert restored.one("select count(*) from blobs") == 200
            finally:
                restored.drop()
        finally:
            target.drop()


def test_backup_to_each_destination_restores_with_identical_tables(
    source: Source, destination: TestDestination
) -> None:
    compression = COMPRESSION[destination.provider]
    backup_id = source.backup(destination, f"--{compression}", "-n", "nightly")

    with destination.store() as store:
        catalog = Catalog(store, SERVER)
        info = catalog.resolve("latest")
        assert info.backup_id == backup_id and info.status == DONE
        assert catalog.resolve("nightly").backup_id == backup_id
        assert info.server_name == SERVER and info.compression == compression
        assert {t.name for t in info.tablespaces or ()} == {"ts1", "ts2"}
        sets = catalog.archives(info)
        assert sets[0].name == "data" and len(sets) == 3
        assert all(p.filename.endswith(f".tar{p.ref.codec.suffix}") for s in sets for p in s.parts)  # type: ignore[union-attr]
        assert check_archives(catalog, backup_id) == []
        record = catalog.pgvault_manifest(backup_id)
        assert record is not None and record.state == "done"
        assert {d.name for d in record.databases} >= {"postgres", "sales"}
        tables = {(t.database, t.name): t for t in record.tables}
        assert (
            tables[("postgres", "accounts")].size
            and tables[("postgres", "blobs")].tablespace == "ts1"
        )
        assert record.tablespace_map == "".join(
            f"{t.oid} {t.location}\n" for t in info.tablespaces or ()
        )

    # barman-cloud reads neither a local directory nor WebDAV, nor zstd
    barman_reads = destination.provider not in ("file", "http") and compression != "zstd"
    if barman_reads:
        listing = run_barman(
            "backup-list", destination, "--format", "json", destination.url, SERVER
        )
        listed = {b["backup_id"]: b for b in json.loads(listing.stdout)["backups_list"]}
        assert listed[backup_id]["status"] == DONE
        assert listed[backup_id]["backup_name"] == "nightly"
    _restore_and_compare(source, destination, backup_id, use_barman=barman_reads)


def test_rollover_parts_with_bzip2_restore_with_barman(source: Source, make_dest: object) -> None:
    dest: TestDestination = make_dest("s3")  # type: ignore[operator]
    backup_id = source.backup(dest, "--bzip2", "-S", "1MB")
    with dest.store() as store:
        catalog = Catalog(store, SERVER)
        data = catalog.archives(catalog.get(backup_id))[0]
        assert len(data.parts) >= 3
        assert [p.filename for p in data.parts[:2]] == ["data.tar.bz2", "data_0001.tar.bz2"]
        # pg_control and backup_label are in the last part, as barman-cloud puts them.
        record = catalog.pgvault_manifest(backup_id)
        assert record is not None
        where = {f.path: f.archive for f in record.files}
        assert where["global/pg_control"] == where["backup_label"] == data.parts[-1].filename
        assert check_archives(catalog, backup_id) == []
    _restore_and_compare(source, dest, backup_id, use_barman=True)


def test_uncompressed_backup_and_a_flipped_byte_is_reported(
    source: Source, make_dest: object
) -> None:
    dest: TestDestination = make_dest("file")  # type: ignore[operator]
    backup_id = source.backup(dest)
    with dest.store() as store:
        catalog = Catalog(store, SERVER)
        assert check_archives(catalog, backup_id) == []
        record = catalog.pgvault_manifest(backup_id)
        assert record is not None
        victim = next(f for f in record.files if f.archive == "data.tar" and f.size > 8192)
        path = os.path.join(dest.url.removeprefix("file://"), SERVER, "base", backup_id, "data.tar")
        with open(path, "r+b") as fh:
            fh.seek(victim.offset + 100)
            byte = fh.read(1)
            fh.seek(victim.offset + 100)
            fh.write(bytes([byte[0] ^ 0xFF]))
        problems = check_archives(catalog, backup_id)
        assert len(problems) == 1 and problems[0].startswith("data.tar: checksum")
        manifest = catalog.postgres_manifest(backup_id)
        assert manifest is not None
        target = restore_target(["ts1", "ts2"])
        try:
            extract_backup(store, SERVER, backup_id, target.data, target.tablespaces)
            verified = verify_with_pg_verifybackup(manifest, target, source.cluster.bindir)
            assert verified.returncode != 0
            assert victim.path in verified.stderr and "checksum" in verified.stderr
        finally:
            target.drop()


def test_a_flipped_byte_in_a_compressed_archive_is_reported(
    source: Source, make_dest: object
) -> None:
    dest: TestDestination = make_dest("s3")  # type: ignore[operator]
    backup_id = source.backup(dest, "--zstd")
    with dest.store() as store:
        catalog = Catalog(store, SERVER)
        tablespace = catalog.archives(catalog.get(backup_id))[1].parts[0]
        data = bytearray(store.get_bytes(tablespace.key))
        data[len(data) // 2] ^= 0x01
        store.put_bytes(tablespace.key, bytes(data))
        problems = check_archives(catalog, backup_id)
    assert problems == [problems[0]] and problems[0].startswith(f"{tablespace.filename}: checksum")


def test_sha256_manifest_is_accepted_by_pg_verifybackup(source: Source, make_dest: object) -> None:
    dest: TestDestination = make_dest("file")  # type: ignore[operator]
    backup_id = source.backup(dest, "--lz4", "--checksum-algorithm", "sha256")
    with dest.store() as store:
        manifest = Catalog(store, SERVER).postgres_manifest(backup_id)
        assert manifest is not None and b'"Checksum-Algorithm": "SHA256"' in manifest
        target = restore_target(["ts1", "ts2"])
        try:
            extract_backup(store, SERVER, backup_id, target.data, target.tablespaces)
            verified = verify_with_pg_verifybackup(
                manifest, target, source.cluster.bindir, wal_dir=source.archive
            )
            assert verified.returncode == 0, verified.stderr
        finally:
            target.drop()
