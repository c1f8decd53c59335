"""PostgreSQL's base-backup exclusions, on a real running cluster: the scan and the archive."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable

from core.backup import BackupRequest, run_backup
from core.catalog.reader import Catalog
from core.postgres.connection import ConnectionParams, Session, read_facts
from core.postgres.pgdata import scan_pgdata, scan_tablespace
from core.progress import Tracker
from core.urls import parse_location
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster, add_tablespace, chown_tree


def _params(cluster: Cluster) -> ConnectionParams:
    return ConnectionParams(host=cluster.sock, port=str(cluster.port), user="postgres")


def _touch(path: str, data: bytes = b"x") -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def _relpath(cluster: Cluster, table: str, fork: str = "") -> str:
    path = str(cluster.one(f"select pg_relation_filepath('{table}')"))
    return path + (f"_{fork}" if fork else "")


def test_exclusions_follow_postgresql(
    cluster_factory: Callable[..., Cluster], make_dest: Callable[..., TestDestination]
) -> None:
    cluster = cluster_factory()
    ts = add_tablespace(cluster, "ts1")
    cluster.sql("create unlogged table u(id int)")
    cluster.sql("insert into u select generate_series(1, 5000)")
    cluster.sql("create unlogged table u2(id int) tablespace ts1")
    cluster.sql("insert into u2 select generate_series(1, 5000)")
    cluster.sql("vacuum u")  # gives the unlogged main forks _fsm and _vm forks
    cluster.sql("vacuum u2")
    cluster.sql("select pg_create_physical_replication_slot('slot1', true)")
    cluster.sql("checkpoint")
    temp_session = cluster.connect()
    temp_session.cursor().execute("create temp table tmp1 as select generate_series(1, 100) g")
    temp_path = temp_session.cursor()
    temp_path.execute("select pg_relation_filepath('tmp1')")
    temp_file = temp_path.fetchone()[0]  # type: ignore[index]

    data = cluster.data
    version_dir = next(n for n in os.listdir(ts) if n.startswith("PG_15_"))
    strays = {
        "base/pgsql_tmp/pgsql_tmp123.0": True,
        "pg_stat_tmp/junk.stat": True,
        "backup_label": True,
        "backup_manifest": True,
        "tablespace_map": True,
        "postgresql.auto.conf.tmp": True,
        "current_logfiles.tmp": True,
        "global/pg_internal.init.4242": True,
        ".DS_Store": True,
        "pg_logical/t1_1": False,  # not a database directory: kept
    }
    for path in strays:
        _touch(os.path.join(data, path))
    _touch(os.path.join(ts, version_dir, "pgsql_tmp", "pgsql_tmp9.0"))
    os.symlink("/tmp", os.path.join(data, "a_link"))
    os.mkfifo(os.path.join(data, "a_fifo"))
    if os.geteuid() == 0:
        chown_tree(data)
        chown_tree(ts)

    try:
        with Session(_params(cluster)) as session:
            facts = read_facts(session)
        tree = scan_pgdata(data, facts)
        paths = {e.path for e in tree.entries}
        dirs = {e.path for e in tree.entries if e.is_dir}
        tablespace = scan_tablespace(ts, facts.tablespaces[0].oid, facts)
        ts_paths = {e.path for e in tablespace.entries}

        # Unlogged relations: every fork but init, in PGDATA and in the tablespace.
        for table, where, names in (("u", paths, None), ("u2", ts_paths, version_dir)):
            rel = _relpath(cluster, table)
            if names:  # pg_tblspc/<oid>/PG_15_x/<db>/<node> -> PG_15_x/<db>/<node>
                rel = rel.split("/", 2)[2]
            assert rel not in where and f"{rel}_fsm" not in where and f"{rel}_vm" not in where
            assert f"{rel}_init" in where
        assert temp_file not in paths and os.path.exists(os.path.join(data, temp_file))
        assert not any("pgsql_tmp" in p for p in paths | ts_paths)
        for path, excluded in strays.items():
            assert (path not in paths) is excluded, path
        for name in ("postmaster.pid", "postmaster.opts", "global/pg_internal.init"):
            assert os.path.exists(os.path.join(data, name)) and name not in paths
        assert "global/pg_control" not in paths  # sent last, by the pipeline
        for emptied in (
            "pg_replslot",
            "pg_stat_tmp",
            "pg_wal",
            "pg_wal/archive_status",
            "pg_tblspc",
            "pg_subtrans",
            "pg_notify",
            "pg_serial",
            "pg_snapshots",
            "pg_dynshmem",
        ):
            assert emptied in dirs, emptied
            assert not any(
                p.startswith(emptied + "/") for p in paths if p != "pg_wal/archive_status"
            ), emptied
        assert os.listdir(os.path.join(data, "pg_replslot"))  # there was something to drop
        assert "a_link" not in paths and "a_fifo" not in paths
        assert tree.excluded["unlogged relations"] >= 3
        assert tree.excluded["special files"] == 2

        # The archive holds exactly the scanned entries, then pg_control and backup_label.
        dest = make_dest("file")
        tracker = Tracker()
        result = run_backup(
            BackupRequest(
                location=parse_location(dest.url),
                server="pg",
                connection=_params(cluster),
                immediate_checkpoint=True,
                wal_check=False,  # this cluster does not archive WAL; the archive is at stake
            ),
            tracker,
        )
        snapshot = tracker.snapshot()
        assert snapshot.phase == "done"
        assert snapshot.files_done == snapshot.files_total
        assert snapshot.bytes_done == snapshot.bytes_total
        with dest.store() as store:
            catalog = Catalog(store, "pg")
            archive = catalog.archives(catalog.get(result.backup_id))[0].parts[0]
            with store.open_reader(archive.key) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
                members = [m.name for m in tar]
        assert members[0] == "." and members[-2:] == ["global/pg_control", "backup_label"]
        archived = set(members[:-2])
        # The backup's own scan, a moment later, applied the same rules.
        for path, excluded in strays.items():
            assert (path not in archived) is excluded, path
        rel = _relpath(cluster, "u")
        assert rel not in archived and f"{rel}_init" in archived
        assert temp_file not in archived and "postmaster.pid" not in archived
        assert "pg_replslot" in archived and not any(m.startswith("pg_replslot/") for m in archived)
        assert {"pg_wal", "pg_wal/archive_status"} <= archived
        assert not any(m.startswith("pg_wal/0") for m in archived)
    finally:
        temp_session.close()
        os.unlink(os.path.join(data, "a_fifo"))
        os.unlink(os.path.join(data, "a_link"))
