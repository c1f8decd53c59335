"""PostgreSQL 16 (the pgserver wheel's binaries, data checksums on) backs up and restores."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable

from core.catalog.reader import Catalog, check_archives
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.postgres import pg16_bindir, wait_for_recovery_end
from tests.support.restore import (
    barman_restore,
    restore_target,
    start_recovered,
    verify_with_pg_verifybackup,
)
from tests.support.sample import archived_cluster, checksums, populate


def test_postgresql_16_backup_restores(make_dest: Callable[..., TestDestination]) -> None:
    bindir = pg16_bindir()
    cluster, archive = archived_cluster(bindir=bindir, initdb_args=["--data-checksums"])
    try:
        assert cluster.major == 16
        populate(cluster)
        expected = checksums(cluster)
        dest = make_dest("s3")
        result = pgvault(
            "backup",
            "--lz4",
            "--immediate-checkpoint",
            "--no-wal-check",  # archive_command copies WAL to `archive`, which recovery reads
            *cluster.conninfo_args(),
            *dest.cli_args,
            dest.url,
            "pg16",
            env=dest.env,
        )
        assert result.returncode == 0, result.stderr
        backup_id = result.stdout.strip()
        with dest.store() as store:
            catalog = Catalog(store, "pg16")
            info = catalog.get(backup_id)
            assert info.version is not None and info.version // 10000 == 16
            assert info.data_checksums == "on"
            assert check_archives(catalog, backup_id) == []
            manifest = catalog.postgres_manifest(backup_id)
            assert manifest is not None
            assert json.loads(manifest)["PostgreSQL-Backup-Manifest-Version"] == 1
            record = catalog.pgvault_manifest(backup_id)
            assert record is not None
            assert any(
                f.path.startswith("pg_tblspc/") and "/PG_16_" in f.path for f in record.files
            )
        target = restore_target(["ts1", "ts2"])
        try:
            barman_restore(dest, "pg16", backup_id, target)
            verified = verify_with_pg_verifybackup(manifest, target, bindir, wal_dir=archive)
            assert verified.returncode == 0, verified.stdout + verified.stderr
            restored = start_recovered(target, bindir, archive)
            try:
                wait_for_recovery_end(restored)
                assert restored.major == 16
                assert checksums(restored) == expected
            finally:
                restored.drop()
        finally:
            target.drop()
    finally:
        cluster.drop()
        shutil.rmtree(archive, ignore_errors=True)
