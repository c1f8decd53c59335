"""Logical backups: bad input and refusals with the seeds' exit codes, a cancelled and a
killed backup that leave nothing listed as restorable, deleting one, and physical retention leaving
them alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import pgvault, spawn
from tests.support.destinations import TestDestination
from tests.support.emulators import free_port
from tests.support.jobs import show, wait_for
from tests.support.logical import (
    BINDIRS_ENV,
    SHOP,
    make_big,
    make_shop,
    pg_dumps,
    wait_for_upload_while_dumping,
)
from tests.support.pg_versions import versioned_cluster
from tests.support.postgres import Cluster, world_dir
from tests.support.restore import run_barman

SERVER = "cli-srv"


@pytest.fixture
def shop(pg: Cluster) -> Cluster:
    make_shop(pg)
    return pg


@pytest.fixture
def local(make_dest: Callable[..., TestDestination]) -> TestDestination:
    return make_dest("file")


def backup(dest: TestDestination, pg: Cluster, *flags: str) -> tuple[int, str, str]:
    result = pgvault("backup", dest.url, SERVER, *pg.conninfo_args(), *flags, env=BINDIRS_ENV)
    return result.returncode, result.stdout.strip(), result.stderr


def logical_objects(dest: TestDestination) -> list[str]:
    with dest.store() as store:
        return [o.key for o in store.list_objects(f"{SERVER}/logical/")]


def listed(dest: TestDestination) -> list[dict[str, object]]:
    result = pgvault(
        "backup-list", dest.url, SERVER, *dest.cli_args, "--format", "json", env=dest.env
    )
    if result.returncode == 1 and "has no backups" in result.stderr:
        return []  # nothing of the server is left: listed as absent, exit 1
    assert result.returncode == 0, result.stderr
    entries: list[dict[str, object]] = json.loads(result.stdout)["logical_backups"]
    return entries


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--database", "nope"], "database 'nope' does not exist on the server"),
        (["--database", SHOP, "--table", "sales.nothing"], "no table matches 'sales.nothing'"),
        (["--database", SHOP, "--table", "nosuch.*"], "no table matches 'nosuch.*'"),
        # pg_dump's 'cross-database references are not implemented' was exit 1
        (["--database", SHOP, "--table", "other.sales.orders"], "names database 'other'"),
        (["--database", SHOP, "--table", "*.*.*"], "names database '*'"),
        (["--database", SHOP, "--table", "a.b.c.d"], "too many dotted names"),
        # the last --database was backed up, the first ignored (exit 0)
        (["--database", SHOP, "--database", "postgres"], "--database: given twice"),
        (["--table", "sales.orders"], "--table needs --database"),
        (["--database", SHOP, "-n", "20261207T101311L"], "it looks like a backup ID"),
        (
            ["--database", SHOP, "--table", "sales.order_totals"],
            "'sales.order_totals' names no table in database 'shöp', only: view sales.order_totals",
        ),
        (
            ["--database", SHOP, "--table", "sales.customers_id_seq"],
            "only: sequence sales.customers_id_seq",
        ),
        (["--database", SHOP, "--incremental"], "--incremental: not available for a logical"),
        (["--database", SHOP, "--bzip2"], "--bzip2/--snappy: not available for a logical"),
        (["--staging-dir", "/tmp"], "only for a logical backup"),
        (["--database", SHOP, "-S", "1GB"], "-S: not available for a logical backup"),
    ],
)
def test_backup_bad_input_exits_3(
    shop: Cluster, local: TestDestination, flags: list[str], message: str
) -> None:
    code, _, err = backup(local, shop, *flags)
    assert code == 3, err
    assert message in err and err.count("\n") == 1
    assert logical_objects(local) == []


@pytest.mark.parametrize("pattern", ["*", "*.*"])
def test_a_wildcard_never_reaches_the_system_catalogs(
    shop: Cluster, local: TestDestination, pattern: str
) -> None:
    code, backup_id, err = backup(local, shop, "--database", SHOP, "--table", pattern)
    assert code == 0, err
    shown = pgvault("backup-show", local.url, SERVER, backup_id, "--format", "json")
    (db,) = json.loads(shown.stdout)["databases"]
    tables = {f"{t['schema']}.{t['name']}" for t in db["tables"]}
    # '*' names the tables on the search path (psql's rule), '*.*' every schema's
    assert "public.docs" in tables and not any(t.startswith(("pg_", "info")) for t in tables)
    assert ("sales.orders" in tables) == (pattern == "*.*")
    # one data file per table with rows, toc.dat, the large object's: no catalog's data
    assert len(db["files"]) <= len(tables) + 3, db["files"]
    wild = f"wild{len(pattern)}"
    shop.sql(f"create database {wild}")
    result = pgvault(
        "restore", local.url, SERVER, backup_id, *shop.restore_flags(), "--database", SHOP,
        "--table", "*.*", "--into-db", wild, env=BINDIRS_ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert shop.one("select count(*) from public.docs", dbname=wild) == 1


def test_a_name_two_backups_share_is_refused_not_chosen(
    shop: Cluster, local: TestDestination
) -> None:
    """As for physical backups (barman's rule): both are taken, naming either by it is exit 3."""
    ids = []
    for _ in range(2):
        code, backup_id, err = backup(local, shop, "--database", SHOP, "-n", "shop1")
        assert code == 0, err
        ids.append(backup_id)
    for argv in (
        ("backup-delete", local.url, SERVER, "-b", "shop1", "--logical"),
        ("backup-show", local.url, SERVER, "shop1", "--logical"),
        ("restore", local.url, SERVER, "shop1", *shop.restore_flags(), "--database", SHOP,
         "--new-db-name", "x"),
    ):  # fmt: skip
        result = pgvault(*argv, env=BINDIRS_ENV)
        assert result.returncode == 3, (argv, result.stderr)
        assert "several logical backups are named 'shop1'" in result.stderr
        assert all(i in result.stderr for i in ids), result.stderr
    assert [e["backup_id"] for e in listed(local)] == ids


def test_the_default_staging_limit_is_one_gib_everywhere(
    shop: Cluster, local: TestDestination, job_store_dir: str
) -> None:
    """The job records 1073741824 (what the agent's jobs record), as --help says."""
    code, backup_id, err = backup(local, shop, "--database", SHOP, "--table", "sales.orders")
    assert code == 0, err
    jobs = pgvault("jobs", "list", "--kind", "logical-backup", "--format", "json")
    job = next(
        j for j in json.loads(jobs.stdout) if (j.get("result") or {}).get("backup_id") == backup_id
    )
    shown = show(job_store_dir, int(job["id"]))
    assert "1073741824" in json.dumps(shown) and "1000000000" not in json.dumps(shown), shown
    helped = pgvault("backup", "--help").stdout
    assert "1073741824 bytes" in " ".join(helped.split())


def test_a_full_staging_directory_is_named_as_the_reason(
    shop: Cluster, local: TestDestination
) -> None:
    """pg_dump's stderr is read by pgvault: the full directory cannot swallow its reason."""
    make_big(shop)
    staging = world_dir("pgvault-small-staging-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", staging], check=True)
    try:
        code, _, err = backup(local, shop, "--database", SHOP, "--staging-dir", staging)
    finally:
        subprocess.run(["umount", "-l", staging], check=False)
        os.rmdir(staging)
    assert code == 1, err
    assert "pg_dump failed" in err and "No space left on device" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert listed(local) == []


def test_a_table_backups_data_size_is_its_tables(shop: Cluster, local: TestDestination) -> None:
    code, backup_id, err = backup(local, shop, "--database", SHOP, "--table", "sales.orders")
    assert code == 0, err
    (entry,) = listed(local)
    orders = shop.one("select pg_table_size('sales.orders')", dbname=SHOP)
    assert entry["data_size"] == orders, entry
    assert orders < shop.one("select pg_database_size(current_database())", dbname=SHOP) / 2
    shown = pgvault("backup-show", local.url, SERVER, backup_id, "--format", "json")
    assert json.loads(shown.stdout)["databases"][0]["size"] > orders  # the database's, as said


def test_refused_connections_exit_1(local: TestDestination, shop: Cluster) -> None:
    port = str(free_port())
    result = pgvault("backup", local.url, SERVER, "-h", "127.0.0.1", "-p", port, "--database", SHOP)
    assert result.returncode == 1 and "cannot connect to PostgreSQL" in result.stderr
    code, backup_id, err = backup(local, shop, "--database", SHOP, "--table", "sales.orders")
    assert code == 0, err
    result = pgvault(
        "restore", local.url, SERVER, backup_id, "--host", "127.0.0.1", "-p", port,
        "--new-db-name", "x",
    )  # fmt: skip
    assert result.returncode == 1 and "cannot connect to PostgreSQL" in result.stderr


@pytest.mark.parametrize(
    "flags, code, message",
    [
        (["--into-db", "x"], 3, "--into-db restores tables"),
        (["--table", "sales.orders", "--into-db", "nodb"], 3, "database 'nodb' does not exist"),
        (["--table", "sales.customers"], 3, "no table of logical backup matches"),
        # restored sales.orders of the backup's database, exit 0 / unexpected error, exit 4
        (["--table", "other.sales.orders", "--into-db", "x"], 3, "names database 'other'"),
        (["--table", "sales.(", "--into-db", "x"], 3, "invalid table pattern 'sales.('"),
        (["--database", SHOP, "--database", "x", "--new-db-name", "y"], 3, "given twice"),
        (["--all-databases", "--no-foreign-keys"], 3, "--no-foreign-keys applies"),
        (["--database", "other"], 3, "holds no database 'other'"),
        (["--new-db-name", "x", "--target-lsn", "0/1"], 3, "not available for a logical restore"),
        (["--new-db-name", "x", "--archive-mode", "off"], 3, "--archive-mode: not available"),
        (["--new-db-name", "ü" * 32], 3, "has 64 bytes: PostgreSQL names have at most 63"),
    ],
)
def test_restore_bad_input(
    shop: Cluster, local: TestDestination, flags: list[str], code: int, message: str
) -> None:
    done, backup_id, err = backup(local, shop, "--database", SHOP, "--table", "sales.orders")
    assert done == 0, err
    result = pgvault(
        "restore", local.url, SERVER, backup_id, *shop.restore_flags(), *flags, env=BINDIRS_ENV
    )
    assert result.returncode == code, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_a_table_backup_whose_foreign_key_names_another_table_restores_as_a_database(
    shop: Cluster, local: TestDestination
) -> None:
    """sales.orders references sales.customers, which the backup does not hold: pg_restore's
    error says how out, and --no-foreign-keys (refused for a database restore before) is it."""
    done, backup_id, err = backup(local, shop, "--database", SHOP, "--table", "sales.orders")
    assert done == 0, err
    flags = (*shop.restore_flags(), "--database", SHOP, "--new-db-name", "orders_only")
    failed = pgvault("restore", local.url, SERVER, backup_id, *flags, env=BINDIRS_ENV)
    assert failed.returncode == 1, failed.stderr
    assert "--no-foreign-keys" in failed.stderr and failed.stderr.count("\n") == 1
    assert shop.one("select count(*) from pg_database where datname = 'orders_only'") == 0
    result = pgvault(
        "restore", local.url, SERVER, backup_id, *flags, "--no-foreign-keys", env=BINDIRS_ENV
    )
    assert result.returncode == 0, result.stderr
    assert shop.one("select count(*) from sales.orders", dbname="orders_only") == shop.one(
        "select count(*) from sales.orders", dbname=SHOP
    )
    assert (
        shop.one(
            "select count(*) from pg_constraint where conrelid = 'sales.orders'::regclass",
            dbname="orders_only",
        )
        == 1
    )


def test_unknown_backup_and_recovery_dir(
    shop: Cluster, local: TestDestination, tmp_path: Path
) -> None:
    result = pgvault("restore", local.url, SERVER, "20250101T000000L", *shop.restore_flags())
    assert result.returncode == 1 and "logical backup 20250101T000000L not found" in result.stderr
    result = pgvault("restore", local.url, SERVER, "20250101T000000L", str(tmp_path / "d"))
    assert result.returncode == 3 and "RECOVERY_DIR: not available for a logical" in result.stderr


def _wait_for_upload_while_dumping(dest: TestDestination, staging: Path) -> None:
    wait_for_upload_while_dumping(dest, staging, SERVER)


def _slow_backup(shop: Cluster, dest: TestDestination, staging: Path) -> object:
    make_big(shop)
    return spawn(
        "backup", dest.url, SERVER, *shop.conninfo_args(), "--database", SHOP, "-J", "2",
        "--staging-dir", str(staging), "--staging-limit", "1", "--max-bandwidth", "200KB", "--gzip",
        env=BINDIRS_ENV,
    )  # fmt: skip


def test_cancelled_backup_leaves_nothing(
    shop: Cluster, local: TestDestination, tmp_path: Path
) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    proc = _slow_backup(shop, local, staging)
    _wait_for_upload_while_dumping(local, staging)
    assert all(state == "T" for _, state in pg_dumps(staging))  # bounded: pg_dump waits
    proc.send_signal(signal.SIGINT)  # type: ignore[attr-defined]
    _, err = proc.communicate(timeout=120)  # type: ignore[attr-defined]
    assert proc.returncode == 1, err  # type: ignore[attr-defined]
    assert "interrupted by SIGINT" in err
    assert listed(local) == [] and logical_objects(local) == []
    assert pg_dumps(staging) == [] and os.listdir(staging) == []


def test_killed_backup_is_never_listed_and_can_be_removed(
    shop: Cluster, local: TestDestination, tmp_path: Path
) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    proc = _slow_backup(shop, local, staging)
    _wait_for_upload_while_dumping(local, staging)
    proc.kill()  # type: ignore[attr-defined]
    proc.communicate(timeout=60)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while pg_dumps(staging) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pg_dumps(staging) == []  # pg_dump died with pgvault
    left = logical_objects(local)
    backup_id = left[0].split("/")[2]
    # Listed by ID as what it is, never as restorable: its owner is provably gone.
    assert [(e["backup_id"], e["status"]) for e in listed(local)] == [(backup_id, "ABANDONED")]
    refused = pgvault("restore", local.url, SERVER, backup_id, *shop.restore_flags())
    assert refused.returncode == 1 and "not found" in refused.stderr
    result = pgvault("backup-delete", local.url, SERVER, "-b", backup_id, "--force")
    assert result.returncode == 0, result.stderr
    assert logical_objects(local) == []


def test_zstd_needs_pg_dump_16_and_its_dump_a_server_as_new(
    shop: Cluster, local: TestDestination
) -> None:
    code, _, err = backup(local, shop, "--database", SHOP, "--zstd")
    assert code == 3 and "pg_dump 15 cannot write zstd" in err
    pg18, pg17 = BINDIRS_ENV["PGVAULT_PG_BINDIRS"].split(":")
    code, _, err = backup(local, shop, "--database", SHOP, "--zstd", "--pg-bindir", pg18)
    assert code == 3 and "does not support compression with ZSTD" in err  # built without it
    code, backup_id, err = backup(local, shop, "--database", SHOP, "--zstd", "--pg-bindir", pg17)
    assert code == 0, err
    (entry,) = listed(local)
    assert entry["compression"] == "zstd" and "17." in str(entry["pg_dump_version"])
    older = pgvault(
        "restore", local.url, SERVER, backup_id, *shop.restore_flags(), "--new-db-name", "z",
        env=BINDIRS_ENV,
    )  # fmt: skip
    assert older.returncode == 3 and "written by pg_dump 17" in older.stderr
    pg18 = versioned_cluster(18)
    try:
        result = pgvault(
            "restore", local.url, SERVER, backup_id, *pg18.restore_flags(), "--new-db-name", "z",
            "-v", "--pg-bindir", pg17,  # the 18 build here has no zstd
            env=BINDIRS_ENV,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "pg_restore (PostgreSQL) 17" in result.stderr
        assert pg18.table_checksums("z") == shop.table_checksums(SHOP)
    finally:
        pg18.drop()


def test_delete_and_retention_treat_logical_backups_as_their_own_series(
    shop: Cluster, local: TestDestination
) -> None:
    code, first, err = backup(local, shop, "--database", SHOP, "--table", "sales.*")
    assert code == 0, err
    time.sleep(1)  # a new ID each second
    code, second, err = backup(local, shop, "--database", SHOP, "-n", "keepme")
    assert code == 0, err
    retention = pgvault("backup-delete", local.url, SERVER, "-r", "REDUNDANCY 1")
    assert retention.returncode == 0, retention.stderr
    assert [e["backup_id"] for e in listed(local)] == [first, second]
    result = pgvault("backup-delete", local.url, SERVER, "-b", first)
    assert result.returncode == 0, result.stderr
    assert [e["backup_id"] for e in listed(local)] == [second]
    assert not [k for k in logical_objects(local) if f"/{first}/" in k]

    # by name or latest, with --logical (a bare latest stays barman's: the physical series)
    for reference in ("keepme", "latest"):
        shown = pgvault("backup-show", local.url, SERVER, reference, "--logical")
        assert shown.returncode == 0 and second in shown.stdout, shown.stderr
    physical = pgvault("backup-show", local.url, SERVER, "latest")
    assert physical.returncode == 1 and second not in physical.stdout
    refused = pgvault("backup-delete", local.url, SERVER, "-r", "REDUNDANCY 1", "--logical")
    assert refused.returncode == 3 and "apply to physical backups" in refused.stderr
    dry = pgvault("backup-delete", local.url, SERVER, "-b", "keepme", "--logical", "--dry-run")
    assert dry.returncode == 0 and f"would delete logical backup {second}" in dry.stdout
    gone = pgvault("backup-delete", local.url, SERVER, "-b", "latest", "--logical")
    assert gone.returncode == 0 and second in gone.stdout, gone.stderr
    assert listed(local) == []
    missing = pgvault("backup-show", local.url, SERVER, "latest", "--logical")
    assert missing.returncode == 1 and "no logical backup" in missing.stderr


def test_on_s3_barman_cloud_does_not_see_it_and_it_restores(
    shop: Cluster, make_dest: Callable[..., TestDestination]
) -> None:
    dest = make_dest("s3")
    result = pgvault(
        "backup", dest.url, SERVER, *dest.cli_args, *shop.conninfo_args(),
        "--database", SHOP, "--gzip", env={**dest.env, **BINDIRS_ENV},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    backup_id = result.stdout.strip()
    seen = run_barman("backup-list", dest, "--format", "json", dest.url, SERVER).stdout
    assert json.loads(seen) == {"backups_list": []}
    run_barman("backup-delete", dest, "-r", "REDUNDANCY 1", dest.url, SERVER)
    assert logical_objects(dest)
    result = pgvault(
        "restore", dest.url, SERVER, "latest", *dest.cli_args, *shop.restore_flags(),
        "--database", SHOP, "--new-db-name", "from_s3", env={**dest.env, **BINDIRS_ENV},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert shop.table_checksums("from_s3") == shop.table_checksums(SHOP)
    assert [e["backup_id"] for e in listed(dest)] == [backup_id]


def test_a_paused_logical_backup_holds_still_then_finishes_and_restores(
    shop: Cluster, local: TestDestination, tmp_path: Path, job_store_dir: str
) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    make_big(shop)
    started = pgvault(
        "backup", local.url, SERVER, *shop.conninfo_args(), "--database", SHOP, "-J", "2",
        "--staging-dir", str(staging), "--staging-limit", "1", "--max-bandwidth", "500KB", "--gzip",
        "--detach", env=BINDIRS_ENV,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.strip()
    _wait_for_upload_while_dumping(local, staging)
    paused = pgvault("jobs", "pause", job_id, "--wait", "--timeout", "10")
    assert paused.returncode == 0, paused.stderr
    time.sleep(1.0)  # what was in flight within the second lands
    first = show(job_store_dir, int(job_id))
    time.sleep(2.0)
    second = show(job_store_dir, int(job_id))
    assert first["state"] == second["state"] == "paused"
    assert first["bytes_done"] == second["bytes_done"]
    assert all(state == "T" for _, state in pg_dumps(staging))  # staging stays bounded
    assert pgvault("jobs", "resume", job_id).returncode == 0
    done = wait_for(
        lambda: (j := show(job_store_dir, int(job_id)))["state"] in ("succeeded", "failed") and j,
        timeout=300,
        interval=0.5,
    )
    assert done["state"] == "succeeded", done
    backup_id = done["result"]["backup_id"]
    assert [e["backup_id"] for e in listed(local)] == [backup_id]
    result = pgvault(
        "restore", local.url, SERVER, backup_id, *shop.restore_flags(), "--new-db-name", "p",
        env=BINDIRS_ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert shop.table_checksums("p") == shop.table_checksums(SHOP)
    assert os.listdir(staging) == []


def test_a_paused_logical_restore_stops_pg_restore_until_resumed(
    shop: Cluster, local: TestDestination, tmp_path: Path, job_store_dir: str
) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    shop.sql(  # some seconds of pg_restore, little to store
        "create table public.wide as select g, repeat(md5(g::text), 30) as t "
        "from generate_series(1, 300000) g",
        dbname=SHOP,
    )
    code, backup_id, err = backup(local, shop, "--database", SHOP, "--gzip")
    assert code == 0, err
    started = pgvault(
        "restore", local.url, SERVER, backup_id, *shop.restore_flags(), "--database", SHOP,
        "--new-db-name", "paused_copy", "-J", "2", "--staging-dir", str(staging), "--detach",
        env=BINDIRS_ENV,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.strip()
    wait_for(lambda: pg_dumps(staging, "pg_restore"), interval=0.05, what="pg_restore running")
    paused = pgvault("jobs", "pause", job_id, "--wait", "--timeout", "10")
    assert paused.returncode == 0, paused.stderr
    time.sleep(1.0)
    stopped = pg_dumps(staging, "pg_restore")
    assert stopped and all(state == "T" for _, state in stopped), stopped
    size = "select sum(pg_database_size(oid)) from pg_database where datname like 'pgvault%'"
    before = shop.one(size)
    time.sleep(2.0)
    assert shop.one(size) == before
    assert show(job_store_dir, int(job_id))["state"] == "paused"

    assert pgvault("jobs", "resume", job_id).returncode == 0
    done = wait_for(
        lambda: (j := show(job_store_dir, int(job_id)))["state"] in ("succeeded", "failed") and j,
        timeout=300,
        interval=0.5,
    )
    assert done["state"] == "succeeded", done
    assert shop.table_checksums("paused_copy") == shop.table_checksums(SHOP)


def test_all_databases_with_the_globals(shop: Cluster, local: TestDestination) -> None:
    code, _, err = backup(local, shop, "--all-databases", "--table", "sales.orders")
    assert code == 3 and "--table applies to one database" in err
    shop.sql("create role reader login password 'secret-pw'")
    code, backup_id, err = backup(local, shop, "--all-databases", "-J", "2")
    assert code == 0, err
    (entry,) = listed(local)
    assert entry["databases"] == ["postgres", SHOP] and entry["globals"] == "globals.sql"
    with local.store() as store:
        sql = store.get_bytes(f"{SERVER}/logical/{backup_id}/globals.sql").decode()
    assert "CREATE ROLE reader;" in sql and "secret-pw" not in sql and "SCRAM" not in sql
    result = pgvault("restore", local.url, SERVER, backup_id, *shop.restore_flags())
    assert result.returncode == 3 and "holds several databases" in result.stderr
    result = pgvault(
        "restore", local.url, SERVER, backup_id, *shop.restore_flags(), "--database", SHOP,
        "--new-db-name", "from_all", env=BINDIRS_ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert shop.table_checksums("from_all") == shop.table_checksums(SHOP)


def test_tags_land_on_every_object_of_a_logical_backup(
    shop: Cluster, make_dest: Callable[..., TestDestination]
) -> None:
    dest = make_dest("s3")
    result = pgvault(
        "backup", dest.url, SERVER, *dest.cli_args, *shop.conninfo_args(), "--database", SHOP,
        "--tags", "team,db", "env,prod", env={**dest.env, **BINDIRS_ENV},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    backup_id = result.stdout.strip()
    with dest.store() as store:
        keys = [o.key for o in store.list_objects(f"{SERVER}/logical/{backup_id}/")]
        assert any(k.endswith("/toc.dat") for k in keys) and any(".dat" in k for k in keys)
        assert any(k.endswith("/logical.json") for k in keys)
        for key in keys:  # read back from moto's S3 API
            assert store.get_tags(key) == {"team": "db", "env": "prod"}, key
    bad = pgvault("backup", dest.url, SERVER, "--database", SHOP, "--tags", "a", env=dest.env)
    assert bad.returncode == 3 and bad.stderr.count("\n") == 1, bad.stderr


def test_a_backup_with_an_unreadable_manifest_is_listed_broken_and_never_passed_silently(
    shop: Cluster, local: TestDestination
) -> None:
    code, first, err = backup(local, shop, "--database", SHOP)
    assert code == 0, err
    time.sleep(1)  # a new ID each second
    code, second, err = backup(local, shop, "--database", SHOP)
    assert code == 0, err
    with local.store() as store:
        store.put_bytes(f"{SERVER}/logical/{second}/logical.json", b'{"kind": "logical", ')

    text = pgvault("backup-list", local.url, SERVER)
    assert text.returncode == 0, text.stderr
    line = next(x for x in text.stdout.splitlines() if x.startswith(second))
    assert "BROKEN" in line and "logical" in line, text.stdout
    assert f"logical backup {second} is broken: unreadable logical backup manifest" in text.stderr
    data = json.loads(pgvault("backup-list", local.url, SERVER, "--format", "json").stdout)
    assert [e["backup_id"] for e in data["logical_backups"]] == [first]
    (broken,) = data["broken"]
    assert broken["backup_id"] == second and broken["status"] == "BROKEN"
    assert broken["kind"] == "logical" and "unreadable" in broken["error"]

    # latest goes to the newest readable backup, and says which one it passed over
    restored = pgvault(
        "restore", local.url, SERVER, "latest", *shop.restore_flags(), "--database", SHOP,
        "--new-db-name", "older", env=BINDIRS_ENV,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert f"logical backup {second} is broken, passed over (latest is {first})" in (
        restored.stderr
    ), restored.stderr
    assert shop.table_checksums("older") == shop.table_checksums(SHOP)
    shown = pgvault("backup-show", local.url, SERVER, second)
    assert shown.returncode == 1 and "unreadable logical backup manifest" in shown.stderr
    assert len(shown.stderr.strip().splitlines()) == 1, shown.stderr
    gone = pgvault("backup-delete", local.url, SERVER, "-b", second)
    assert gone.returncode == 0, gone.stderr
    assert not [k for k in logical_objects(local) if f"/{second}/" in k]
