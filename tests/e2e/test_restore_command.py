"""PostgreSQL recovers a base copy by replaying the archive through `pgvault wal-restore`."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.support.destinations import TestDestination
from tests.support.postgres import (
    Cluster,
    as_postgres,
    start_restored,
    wait_for_recovery_end,
)
from tests.support.wal import (
    archive_command,
    archived_names,
    pg_wal_bytes,
    pgvault_run,
    restore_command,
    stop_pushers,
    switch_segments,
    wait_for,
)


@pytest.mark.parametrize("provider, fast", [("s3", False), ("gcs", True)])
def test_postgres_replays_archived_wal_through_restore_command(
    provider: str,
    fast: bool,
    make_dest: Callable[..., TestDestination],
    pgvault_bin: str,
    cluster_factory: Callable[..., Cluster],
    scratch_dirs: Callable[[str], str],
) -> None:
    dest = make_dest(provider)
    spools = scratch_dirs("pgvault-pitr-spools-")
    archive_flags = [*dest.cli_args, "--zstd"]
    if fast:
        archive_flags += ["--async", "--spool-dir", os.path.join(spools, "archive")]
    source = cluster_factory(
        archive_command=archive_command(pgvault_bin, dest.url, *archive_flags), env=dest.env
    )
    source.sql("create table t(id int primary key, note text)")
    source.sql("insert into t select g, 'before the copy' from generate_series(1, 1000) g")

    base = os.path.join(scratch_dirs("pgvault-basecopy-"), "data")
    as_postgres(
        [
            f"{source.bindir}/pg_basebackup",
            "-D",
            base,
            "-Fp",
            "-X",
            "none",
            "-c",
            "fast",
            "-h",
            source.sock,
            "-p",
            str(source.port),
            "-U",
            "postgres",
        ],
        env=dest.env,
    )
    # Rows committed after the base copy exist only in the archived WAL.
    source.sql("insert into t select g, 'after the copy' from generate_series(1001, 40000) g")
    switch_segments(source, 3, rows=5000)
    source.sql("update t set note = 'last change' where id % 7 = 0")
    expected = source.table_checksums()
    last = source.one("select pg_walfile_name(pg_current_wal_lsn())")
    source.sql("select pg_switch_wal()")
    source.wait_archived(last)
    source.stop()

    as_postgres(["touch", os.path.join(base, "recovery.signal")])
    command = restore_command(
        pgvault_bin,
        dest.url,
        *dest.cli_args,
        "-p",
        "4",
        "--spool-dir",
        os.path.join(spools, "restore"),
        "--abort-on-error",
    )
    # The restored server goes on archiving into the same archive, on its new timeline.
    settings = {
        "restore_command": command,
        "archive_mode": "on",
        "archive_command": archive_command(pgvault_bin, dest.url, *archive_flags),
    }
    restored = start_restored(base, source.bindir, env=dest.env, settings=settings)
    try:
        wait_for_recovery_end(restored)
        assert restored.table_checksums() == expected
        assert restored.one("select count(*) from t where note = 'after the copy'") > 0
        log = restored.server_log()
        assert f'restored log file "{last}" from archive' in log
        wait_for(lambda: not restored.one("select pg_is_in_recovery()"), what="promotion")
        assert "FATAL" not in log

        (segment,) = switch_segments(restored, 1, rows=1000)
        assert segment.startswith("00000002")
        restored.wait_archived(segment)
        with dest.store() as store:
            assert "00000002.history" in archived_names(store, "pg1")
        history = os.path.join(scratch_dirs("pgvault-history-"), "RECOVERYHISTORY")
        fetched = pgvault_run(
            pgvault_bin,
            "wal-restore",
            *dest.cli_args,
            dest.url,
            "pg1",
            "00000002.history",
            history,
            env=dest.env,
        )
        assert fetched.returncode == 0, fetched.stderr
        with open(history, "rb") as fh:
            assert fh.read() == pg_wal_bytes(restored, "00000002.history")
        check = ["check-wal-archive", *dest.cli_args, dest.url, "pg1"]
        assert pgvault_run(pgvault_bin, *check, "--timeline", "3", env=dest.env).returncode == 0
        assert pgvault_run(pgvault_bin, *check, "--timeline", "2", env=dest.env).returncode == 1
    finally:
        restored.drop()
        stop_pushers(os.path.join(spools, "archive"))
