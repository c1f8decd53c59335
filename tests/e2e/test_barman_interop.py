"""barman-cloud reads the WAL pgvault archives, and pgvault reads what barman-cloud archives."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster
from tests.support.wal import (
    archive_command,
    archived_names,
    barman_args,
    barman_tool,
    pg_wal_bytes,
    pgvault_run,
    switch_segments,
    wait_archived_count,
)

CASES = [
    ("s3", ["-z", "--lz4"]),
    ("azure", ["--snappy", "--xz"]),
    ("gcs", ["--zstd", "-j"]),
]


def _switch_with_each(cluster: Cluster, commands: list[str]) -> list[str]:
    segments = []
    for command in commands:
        cluster.sql(f"alter system set archive_command = '{command}'")
        cluster.sql("select pg_reload_conf()")
        time.sleep(0.5)
        segments += switch_segments(cluster, 1, rows=5000)
        wait_archived_count(cluster, len(segments))
    return segments


@pytest.mark.parametrize("provider, compressions", CASES)
def test_barman_cloud_wal_restore_reads_what_pgvault_archived(
    provider: str,
    compressions: list[str],
    make_dest: Callable[..., TestDestination],
    pgvault_bin: str,
    cluster_factory: Callable[..., Cluster],
    scratch_dirs: Callable[[str], str],
) -> None:
    dest = make_dest(provider)
    cluster = cluster_factory(
        archive_command=archive_command(pgvault_bin, dest.url, *dest.cli_args),
        env=dest.env,
        settings={"wal_keep_size": "1GB"},
    )
    commands = [archive_command(pgvault_bin, dest.url, *dest.cli_args, c) for c in compressions]
    segments = _switch_with_each(cluster, commands)
    target = scratch_dirs("pgvault-barman-restore-")
    restore = barman_tool("barman-cloud-wal-restore")
    for segment in segments:
        out = os.path.join(target, segment)
        result = subprocess.run(
            [restore, *barman_args(provider, dest.cli_args), dest.url, "pg1", segment, out],
            capture_output=True,
            text=True,
            env={**os.environ, **dest.env},
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        with open(out, "rb") as fh:
            assert fh.read() == pg_wal_bytes(cluster, segment)


@pytest.mark.parametrize("provider, compressions", CASES)
def test_pgvault_reads_and_recognises_what_barman_cloud_archived(
    provider: str,
    compressions: list[str],
    make_dest: Callable[..., TestDestination],
    pgvault_bin: str,
    cluster_factory: Callable[..., Cluster],
    scratch_dirs: Callable[[str], str],
) -> None:
    dest = make_dest(provider)
    barman = barman_tool("barman-cloud-wal-archive")
    flags = barman_args(provider, dest.cli_args)
    commands = [" ".join([barman, *flags, c, dest.url, "pg1", "%p"]) for c in compressions]
    cluster = cluster_factory(
        archive_command=commands[0], env=dest.env, settings={"wal_keep_size": "1GB"}
    )
    segments = _switch_with_each(cluster, commands)
    with dest.store() as store:
        keys = archived_names(store, "pg1")
    assert all(s in keys for s in segments)

    target = scratch_dirs("pgvault-walrestore-target-")
    os.makedirs(os.path.join(target, "pg_wal"))
    for segment in segments:
        out = os.path.join(target, "pg_wal", "RECOVERYXLOG")
        result = pgvault_run(
            pgvault_bin, "wal-restore", *dest.cli_args, dest.url, "pg1", segment, out, env=dest.env
        )
        assert result.returncode == 0, result.stderr
        with open(out, "rb") as fh:
            assert fh.read() == pg_wal_bytes(cluster, segment)

        # pgvault recognises barman's copy as the same file (no metadata: byte comparison)...
        wal_path = os.path.join(cluster.data, "pg_wal", segment)
        again = pgvault_run(
            pgvault_bin,
            "wal-archive",
            *dest.cli_args,
            "--zstd",
            dest.url,
            "pg1",
            wal_path,
            env=dest.env,
        )
        assert again.returncode == 0, again.stderr
    # ... and refuses other bytes under a name barman archived.
    other = os.path.join(target, segments[0])
    changed = bytearray(pg_wal_bytes(cluster, segments[0]))
    changed[12345] ^= 1
    with open(other, "wb") as fh:
        fh.write(changed)
    refused = pgvault_run(
        pgvault_bin, "wal-archive", *dest.cli_args, dest.url, "pg1", other, env=dest.env
    )
    assert refused.returncode == 1 and "different content" in refused.stderr
    with dest.store() as store:
        assert archived_names(store, "pg1") == keys
