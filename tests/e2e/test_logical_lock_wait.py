"""A logical backup whose pg_dump waits for a lock says so: which table, which session holds
it (never its query text), in the job's phase and its log; once that transaction ends the
dump goes on and the backup restores whole."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from tests.support.cli import pgvault, spawn
from tests.support.destinations import TestDestination
from tests.support.jobs import show, wait_for
from tests.support.logical import BINDIRS_ENV, SHOP, make_shop
from tests.support.postgres import Cluster

SERVER = "lock-srv"
SECRET_IN_QUERY = "lock wait canary 5b1c"
#: a table nothing depends on (pg_restore --clean drops it without CASCADE), quoted
TABLE = '"Lager Ü"."größe"'


def test_a_dump_waiting_for_a_lock_names_the_table_and_who_holds_it(
    pg: Cluster, make_dest: Callable[..., TestDestination], job_store_dir: str
) -> None:
    make_shop(pg)
    dest = make_dest("file")
    blocker = pg.connect(SHOP)
    blocker.autocommit = False
    with blocker.cursor() as cur:
        cur.execute("set application_name = 'schema migration'")
        cur.execute(f"lock table sales.customers in access exclusive mode /* {SECRET_IN_QUERY} */")
    holder = blocker.get_backend_pid()
    proc = spawn("backup", dest.url, SERVER, *pg.conninfo_args(), "--database", SHOP,
                 env=BINDIRS_ENV)  # fmt: skip
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(proc.stderr or ()), daemon=True)
    reader.start()
    try:
        wait_for(
            lambda: any("pg_dump waits for a lock on sales.customers" in s for s in said),
            timeout=90,
            what="the backup to name the lock pg_dump waits for",
        )
        warning = next(s for s in said if "pg_dump waits for a lock" in s)
        assert f"held by pid {holder} (user postgres, application 'schema migration'" in warning
        assert "idle in transaction" in warning and SECRET_IN_QUERY not in warning
        # The phase says it too: what the jobs view and `jobs list` show of the running job.
        jobs = json.loads(pgvault("jobs", "list", "--format", "json").stdout)
        # the job store is the suite's: an ended job of an earlier test may have had this pid
        (job,) = [j for j in jobs if j["pid"] == proc.pid and j["state"] == "running"]
        waiting = f"dump {SHOP}: waiting for a lock on sales.customers"
        wait_for(
            lambda: show(job_store_dir, job["id"])["phase"] == waiting,
            timeout=30,
            what="the job's phase to name the lock",
        )
        assert proc.poll() is None
    finally:
        blocker.rollback()
        blocker.close()
    out, _ = proc.communicate(timeout=300)
    reader.join(timeout=10)
    assert proc.returncode == 0, "".join(said)
    backup_id = out.strip()
    log = pgvault("jobs", "log", str(job["id"])).stdout
    assert "pg_dump got its lock on sales.customers after" in log, log
    assert SECRET_IN_QUERY not in log

    restored = pgvault(
        "restore", dest.url, SERVER, backup_id, *pg.restore_flags(), "--new-db-name", "unlocked",
        env=BINDIRS_ENV,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert pg.table_checksums("unlocked") == pg.table_checksums(SHOP)


def test_a_restore_waiting_for_a_lock_names_the_table_and_who_holds_it(
    pg: Cluster, make_dest: Callable[..., TestDestination]
) -> None:
    """pg_restore --clean drops the table it replaces: a session reading it holds that up."""
    make_shop(pg)
    dest = make_dest("file")
    made = pgvault("backup", dest.url, SERVER, *pg.conninfo_args(), "--database", SHOP,
                   env=BINDIRS_ENV)  # fmt: skip
    assert made.returncode == 0, made.stderr
    before = pg.table_checksums(SHOP)
    reader = pg.connect(SHOP)
    reader.autocommit = False
    with reader.cursor() as cur:
        cur.execute("set application_name = 'report'")
        cur.execute(f"select count(*) from {TABLE}")
    proc = spawn(
        "restore", dest.url, SERVER, made.stdout.strip(), *pg.restore_flags(),
        "--database", SHOP, "--table", TABLE, "--into-db", SHOP, "--clean",
        env=BINDIRS_ENV,
    )  # fmt: skip
    said: list[str] = []
    listener = threading.Thread(target=lambda: said.extend(proc.stderr or ()), daemon=True)
    listener.start()
    try:
        wait_for(
            lambda: any(f"pg_restore waits for a lock on {TABLE}" in s for s in said),
            timeout=90,
            what="the restore to name the lock pg_restore waits for",
        )
        warning = next(s for s in said if "pg_restore waits for a lock" in s)
        assert f"held by pid {reader.get_backend_pid()} (user postgres, application 'report'" in (
            warning
        )
        assert proc.poll() is None
    finally:
        reader.rollback()
        reader.close()
    proc.communicate(timeout=300)
    listener.join(timeout=10)
    assert proc.returncode == 0, "".join(said)
    assert pg.table_checksums(SHOP) == before
