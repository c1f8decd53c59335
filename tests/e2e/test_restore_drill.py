"""verify --restore-drill: a good backup restores, starts, reaches consistency and passes
pg_amcheck; a backup that faithfully copied a corrupted index fails; both leave nothing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from tests.support.catalog import archived_server
from tests.support.destinations import TestDestination, make_destination
from tests.support.emulators import free_port
from tests.support.postgres import (
    Cluster,
    add_tablespace,
    as_postgres,
    debian_bindir,
    world_dir,
)


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


DEBIAN_LAYOUT = """
data_directory = '{data}'
hba_file = '{etc}/pg_hba.conf'
ident_file = '{etc}/pg_ident.conf'
external_pid_file = '{base}/15-main.pid'
include_dir = 'conf.d'
port = {port}
unix_socket_directories = '{base}'
listen_addresses = ''
archive_mode = on
archive_command = '{pgvault} --batch wal-archive {url} pg1 %p'
"""


def test_restore_drill_of_a_pg_ctlcluster_cluster_starts_on_its_own_copy(
    pgvault_bin: str,
) -> None:
    # Found by following the README's note on pg_ctlcluster clusters: the backup stores
    # /etc/postgresql/15/main/postgresql.conf in the data directory, whose include_dir
    # 'conf.d' (not backed up) kept the drill's server from starting, and whose
    # data_directory and external_pid_file name the source's own places.
    bindir = debian_bindir()
    base = world_dir("pgvault-debian-")
    data, etc = os.path.join(base, "data"), os.path.join(base, "etc")
    dest = make_destination("file", {})
    work = world_dir("pgvault-drill-parent-")
    config = ["-o", f"-c config_file={etc}/postgresql.conf"]
    try:
        as_postgres([f"{bindir}/initdb", "-D", data, "--no-sync", "-A", "trust"])
        as_postgres(["mkdir", "-p", os.path.join(etc, "conf.d")])
        for name in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
            as_postgres(["mv", os.path.join(data, name), etc])
        port = free_port()
        settings = DEBIAN_LAYOUT.format(
            data=data, etc=etc, base=base, port=port, pgvault=pgvault_bin, url=dest.url
        )
        as_postgres(["sh", "-c", f"cat >> {etc}/postgresql.conf"], input=settings)
        as_postgres([f"{bindir}/pg_ctl", "-D", data, *config, "-l", f"{base}/log", "-w", "start"])
        pid_file = Path(base, "15-main.pid").read_text()
        connection = ["-h", base, "-p", str(port)]
        backup = as_postgres(
            [
                pgvault_bin,
                "--batch",
                "backup",
                "--immediate-checkpoint",
                *connection,
                dest.url,
                "pg1",
            ]
        ).stdout.strip()

        drill = ["--restore-drill", "--pgvault-command", pgvault_bin, "--drill-dir", work]
        verified = as_postgres(
            [pgvault_bin, "--batch", "verify", *drill, dest.url, "pg1", backup], check=False
        )

        assert verified.returncode == 0, verified.stderr
        assert "restore drill passed" in verified.stdout, verified.stdout
        assert Path(base, "15-main.pid").read_text() == pid_file
        assert os.listdir(work) == []
    finally:
        as_postgres([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], check=False)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        dest.drop()
