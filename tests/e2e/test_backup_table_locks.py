"""A physical backup never waits for a table lock (pg_basebackup and barman take none): with
one table held ACCESS EXCLUSIVE in an open transaction and an index being rebuilt, the
backup records what the cluster holds (the locked ones at pg_class's size), ends DONE,
and restores."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.pitr import SERVER, make_source, new_target, restore, restored_server
from tests.support.postgres import wait_for_recovery_end


def test_a_backup_does_not_wait_for_a_table_lock(
    make_dest: Callable[..., TestDestination], pgvault_bin: str
) -> None:
    dest = make_dest("file")
    source = make_source(dest, pgvault_bin, scale=1)
    cluster = source.cluster
    target = new_target()
    locker, reindexer = cluster.connect(), cluster.connect()
    try:
        locker.autocommit = reindexer.autocommit = False
        with locker.cursor() as cur:
            cur.execute("lock table pgbench_accounts in access exclusive mode")
        with reindexer.cursor() as cur:  # ACCESS EXCLUSIVE on the index until it commits
            cur.execute("reindex index pgbench_branches_pkey")
        # Any statement opening pgbench_accounts, or pgbench_branches with its indexes, waits
        # now: pg_total_relation_size did.
        backup_id = source.backup()  # (a 600 s timeout: it used to wait as long as the locks)
        locker.rollback()
        reindexer.rollback()
        shown = pgvault("backup-show", "--format", "json", dest.url, SERVER, backup_id)
        assert shown.returncode == 0, shown.stderr
        details = json.loads(shown.stdout)
        assert details["summary"]["status"] == "DONE"
        tables = {t["name"]: t for t in details["tables"]}
        # pg_class's estimate for the locked table (its pages at the last VACUUM: pgbench -i
        # vacuums), the exact size for the others
        assert tables["pgbench_accounts"]["size"] > 0
        assert tables["pgbench_branches"]["size"] > 0
        source.archive_everything()
        expected = cluster.table_checksums()
        restore(dest, target, backup_id)
        with restored_server(target, cluster.bindir) as server:
            wait_for_recovery_end(server)
            assert server.table_checksums() == expected
    finally:
        locker.close()
        reindexer.close()
        target.drop()
        cluster.drop()
