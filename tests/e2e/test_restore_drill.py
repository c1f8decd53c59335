"""verify --restore-drill: a good backup restores, starts, reaches consistency and passes
pg_amcheck; a backup that faithfully copied a corrupted index fails; both leave nothing."""

from __future__ import annotations

import os
from collections.abc import Callable

from tests.support.catalog import archived_server
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster, add_tablespace, world_dir


def _corrupt_index_page(cluster: Cluster, index: str) -> None:
    """Garbage over block 1 of an index, on disk only (the server's buffer stays clean)."""
    path = os.path.join(cluster.data, cluster.one(f"select pg_relation_filepath('{index}')"))
    with open(path, "r+b") as fh:
        fh.seek(8192 + 100)
        fh.write(bytes((i * 37 + 11) % 256 for i in range(4000)))


def test_restore_drill_passes_a_good_backup_and_fails_a_corrupted_one(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
) -> None:
    dest = make_dest("gcs")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    cluster = server.cluster
    cluster.sql("create table drill(id int primary key, label text)")
    cluster.sql("insert into drill select g, md5(g::text) from generate_series(1, 20000) g")
    # A tablespace: the drill relocates it inside its temporary directory.
    location = add_tablespace(cluster, "drill_ts")
    cluster.sql("create table elsewhere tablespace drill_ts as select generate_series(1, 5000) i")
    cluster.sql("create index elsewhere_i on elsewhere(i) tablespace drill_ts")
    cluster.sql("checkpoint")
    before = sorted(os.listdir(location))
    good = server.backup("--zstd")
    server.write_wal(1)
    work = world_dir("pgvault-drill-parent-")
    drill = ["--restore-drill", "--pgvault-command", pgvault_bin, "--drill-dir", work]

    passed = server.run("verify", good, *drill)
    assert passed.returncode == 0, passed.stderr
    out = passed.stdout
    assert "drill: restored backup" in out and "replayed the WAL to consistency" in out
    assert "pg_amcheck --all: no corruption found" in out
    assert "databases that accept connections: postgres" in out
    assert f"backup {good}: verified" in out and "restore drill passed" in out
    assert os.listdir(work) == []
    assert sorted(os.listdir(location)) == before  # the source's tablespace untouched

    # The backup copies the damaged page as it is (its checksums match what was read):
    # verify passes its objects, the drill's pg_amcheck finds the damage.
    _corrupt_index_page(cluster, "drill_pkey")
    bad = server.backup("--zstd")
    server.write_wal(1)
    objects_only = server.run("verify", bad)
    assert objects_only.returncode == 0, objects_only.stderr
    failed = server.run("verify", bad, *drill)
    assert failed.returncode == 1, (failed.stdout, failed.stderr)
    assert "pg_amcheck found problems" in failed.stderr and "drill_pkey" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert os.listdir(work) == []
    os.rmdir(work)
