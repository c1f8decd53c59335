"""`restore --all-databases`: an --all-databases logical backup restored whole into another
server: its roles first (an existing one kept, and said so), then every database under its
own name, compared with the source; existing names refused without --clean, replaced with it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from typing import Any, cast

from tests.support.cli import pgvault
from tests.support.logical import SHOP, make_shop
from tests.support.postgres import Cluster, make_cluster, world_dir

SERVER = "all-srv"
DOTS = (".", "..")


def restore_all(
    url: str, backup_id: str, target: Cluster, *flags: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return pgvault(
        "restore", url, SERVER, backup_id, *target.restore_flags(), "--all-databases", "-v", *flags,
        env=env,
    )  # fmt: skip


def restore_job(state: str) -> dict[str, Any]:
    """The one restore job of a job store of its own."""
    listed = pgvault("jobs", "list", "--kind", "logical-restore", "--format", "json",
                     env={"PGVAULT_STATE_DIR": state})  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    (job,) = json.loads(listed.stdout)
    return cast(dict[str, Any], job)


def test_an_all_databases_backup_restores_roles_and_every_database() -> None:
    source, target = make_cluster(), make_cluster()
    root = world_dir("pgvault-logical-all-")
    url = f"file://{root}"
    try:
        source.sql("create role app_owner login createdb")
        make_shop(source)
        source.sql("create database second owner app_owner")
        source.sql("create table notes (id int primary key, body text)", dbname="second")
        source.sql("insert into notes select g, md5(g::text) from generate_series(1, 300) g",
                   dbname="second")  # fmt: skip
        for dots in DOTS:  # legal names, and no key segment as they are
            source.sql(f'create database "{dots}"')
            source.sql(f"create table t (v text); insert into t values ('{dots}')", dbname=dots)
        taken = pgvault("backup", url, SERVER, *source.conninfo_args(), "--all-databases")
        assert taken.returncode == 0, taken.stderr
        backup_id = taken.stdout.strip()

        state = tempfile.mkdtemp(prefix="pgvault-all-state-")
        result = restore_all(url, backup_id, target, env={"PGVAULT_STATE_DIR": state})
        assert result.returncode == 0, result.stderr
        # One bar for the whole restore: every file of both databases, counted once.
        job = restore_job(state)
        assert job["files_done"] == job["files_total"], job
        assert job["files_total"] >= 2 * 2, job  # toc.dat and a data file per database
        assert 0.9 * job["bytes_total"] <= job["bytes_done"] <= 1.1 * job["bytes_total"], job
        assert "role postgres exists on the target server: kept as it is" in result.stderr
        assert "database postgres held no table: skipped" in result.stderr
        assert target.one("select rolcanlogin from pg_roles where rolname = 'app_owner'")
        for db in (SHOP, "second", *DOTS):
            assert target.table_checksums(db) == source.table_checksums(db), db

        again = restore_all(url, backup_id, target)
        assert again.returncode == 3, again.stderr
        assert SHOP in again.stderr and "second" in again.stderr and "--clean" in again.stderr

        target.sql("delete from notes where id > 10", dbname="second")
        # latest: the newest --all-databases backup, not the newer single-database one
        one_db = pgvault("backup", url, SERVER, *source.conninfo_args(), "--database", "second")
        assert one_db.returncode == 0, one_db.stderr
        clean = restore_all(url, "latest", target, "--clean")
        assert clean.returncode == 0, clean.stderr
        assert "role app_owner exists on the target server" in clean.stderr
        for db in (SHOP, "second"):
            assert target.table_checksums(db) == source.table_checksums(db), db

        alone = pgvault("restore", url, SERVER, backup_id, *target.restore_flags(),
                        "--database", "..", "--new-db-name", "dotdot")  # fmt: skip
        assert alone.returncode == 0, alone.stderr
        assert target.table_checksums("dotdot") == source.table_checksums("..")

        # the maintenance database is the one -d names, in a conninfo or a URI too: then
        # postgres (no table) is restored and replaced like any other
        for dbname in ("dbname=template1", "postgresql:///template1"):
            other = restore_all(url, backup_id, target, "--clean", "-d", dbname)
            assert other.returncode == 0, other.stderr
            assert "held no table: skipped" not in other.stderr
        one = pgvault("restore", url, SERVER, backup_id, *target.restore_flags(),
                      "--all-databases", "--database", SHOP)  # fmt: skip
        assert one.returncode == 3 and "--all-databases restores every database" in one.stderr
    finally:
        source.drop()
        target.drop()
        shutil.rmtree(root, ignore_errors=True)
