"""Logical backups record pg_dump's SHA-256 of every stored object: a damaged object fails
the restore (exit 1, naming it) and leaves no table or database, and `verify ID` reads
every object and names each damaged or missing one."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.logical import BINDIRS_ENV, SHOP, make_shop
from tests.support.postgres import Cluster

SERVER = "sum-srv"


@pytest.fixture
def shop(pg: Cluster) -> Cluster:
    make_shop(pg)
    return pg


def _data_file(pg: Cluster, dump_dir: Path, schema: str, table: str) -> Path:
    """The .dat file holding a table's data, from pg_restore's listing of the stored toc."""
    listing = subprocess.run(
        [os.path.join(pg.bindir, "pg_restore"), "-l", str(dump_dir)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in listing.splitlines():
        if f" TABLE DATA {schema} {table} " in line:
            return dump_dir / f"{line.split(';')[0]}.dat"
    raise AssertionError(f"no TABLE DATA for {schema}.{table} in\n{listing}")


def _logical_backup(shop: Cluster, dest: TestDestination) -> str:
    """A logical backup of the shop database into `dest`: its ID."""
    made = pgvault(
        "backup", dest.url, SERVER, *shop.conninfo_args(), "--database", SHOP, env=BINDIRS_ENV
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def test_a_damaged_object_fails_restore_and_verify_names_it(
    shop: Cluster, make_dest: Callable[..., TestDestination]
) -> None:
    dest = make_dest("file")
    backup_id = _logical_backup(shop, dest)
    sound = pgvault("verify", dest.url, SERVER, backup_id)
    assert sound.returncode == 0, sound.stderr

    root = Path(dest.url.removeprefix("file://"))
    dump_dir = root / SERVER / "logical" / backup_id / "db" / quote(SHOP, safe="")
    manifest = json.loads((dump_dir.parent.parent / "logical.json").read_text())
    assert all(len(f["sha256"]) == 64 for f in manifest["databases"][0]["files"])

    # One digit changed at byte 1000 of sales.orders' data: same size, other rows.
    orders = _data_file(shop, dump_dir, "sales", "orders")
    body = bytearray(orders.read_bytes())
    at = next(i for i in range(1000, len(body)) if chr(body[i]).isdigit())
    body[at] = ord("7") if body[at] != ord("7") else ord("3")
    with orders.open("r+b") as f:  # in place: the same inode a restore links
        f.write(body)
    shop.sql("create database corrupt1")
    refused = pgvault(
        "restore", dest.url, SERVER, backup_id, *shop.restore_flags(), "--database", SHOP,
        "--table", "sales.orders", "--into-db", "corrupt1", env=BINDIRS_ENV,
    )  # fmt: skip
    assert refused.returncode == 1, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert orders.name in refused.stderr and "damaged" in refused.stderr
    assert shop.sql("select relname from pg_stat_user_tables", dbname="corrupt1") == []
    whole = pgvault(
        "restore", dest.url, SERVER, backup_id, *shop.restore_flags(), "--database", SHOP,
        "--new-db-name", "corrupt2", env=BINDIRS_ENV,
    )  # fmt: skip
    assert whole.returncode == 1 and orders.name in whole.stderr, whole.stderr
    assert len(whole.stderr.strip().splitlines()) == 1, whole.stderr
    # checked beside pg_restore's load into a temporary database: that one is dropped too
    left = "select datname from pg_database where datname = 'corrupt2' or datname like 'pgvault%'"
    assert shop.sql(left) == []

    # verify names every damaged or missing object.
    lines = _data_file(shop, dump_dir, "sales", "order_lines")
    lines.unlink()
    bad = pgvault("verify", dest.url, SERVER, backup_id)
    assert bad.returncode == 1, bad.stderr
    assert "Traceback" not in bad.stderr
    assert f"{orders.name}: SHA-256" in bad.stderr and f"{lines.name}: missing" in bad.stderr
    assert "2 problem(s)" in bad.stderr

    # A manifest from before checksums: sizes are still checked, the restore still works.
    (dump_dir / orders.name).write_bytes(body)
    for f in manifest["databases"][0]["files"]:
        del f["sha256"]
    (dump_dir.parent.parent / "logical.json").write_text(json.dumps(manifest))
    older = pgvault("verify", dest.url, SERVER, backup_id, "--format", "json")
    assert older.returncode == 1 and f"{lines.name}: missing" in older.stderr, older.stderr
    assert f"{orders.name}" not in older.stderr.replace(f"{lines.name}: missing", "")


def test_keep_rehydrate_and_drill_say_they_apply_to_physical_backups(
    shop: Cluster, make_dest: Callable[..., TestDestination]
) -> None:
    dest = make_dest("file")
    backup_id = _logical_backup(shop, dest)
    for argv in (
        ("backup-keep", dest.url, SERVER, backup_id, "--target", "full"),
        ("backup-rehydrate", dest.url, SERVER, backup_id),
        ("verify", dest.url, SERVER, backup_id, "--restore-drill"),
    ):
        refused = pgvault(*argv)
        assert refused.returncode == 3, (argv, refused.stderr)
        assert "physical backups" in refused.stderr, refused.stderr
        assert "no backup matches" not in refused.stderr
