"""The catalog commands on backups barman-cloud-backup 3.19.1 wrote (no pgvault.json):
list and show agree with barman-cloud, verify says what it could not check and still names a
damaged object, the restore drill passes, and keep annotations and deletions are shared."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.support.catalog import (
    SERVER,
    ArchivedServer,
    archive_keys,
    archived_server,
    flip_byte,
    json_out,
    object_keys,
    put_object,
)
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster
from tests.support.restore import run_barman


def _barman_backup(server: ArchivedServer, *flags: str) -> str:
    dest = server.dest
    before = _barman_ids(dest)
    run_barman(
        "backup",
        dest,
        "--immediate-checkpoint",
        *flags,
        *server.cluster.conninfo_args(),
        dest.url,
        SERVER,
    )
    (new,) = set(_barman_ids(dest)) - set(before)
    return new


def _barman_ids(dest: TestDestination) -> list[str]:
    listing = run_barman("backup-list", dest, "--format", "json", dest.url, SERVER).stdout
    return [b["backup_id"] for b in json.loads(listing)["backups_list"]]


def test_catalog_commands_on_backups_barman_cloud_wrote(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
) -> None:
    dest = make_dest("s3")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    server.cluster.sql("create table barman_made(id int primary key, label text)")
    server.cluster.sql(
        "insert into barman_made select g, md5(g::text) from generate_series(1, 5000) g"
    )
    first = _barman_backup(server, "--gzip")
    server.write_wal(1)
    second = _barman_backup(server, "--gzip", "-n", "second")
    server.write_wal(1)

    # backup-list: barman-cloud's own entries, written_by barman-cloud.
    data = json_out(server.run("backup-list", "--format", "json"))
    entries = data["backups_list"]
    barman = json.loads(
        run_barman("backup-list", dest, "--format", "json", dest.url, SERVER).stdout
    )
    assert [{k: v for k, v in e.items() if k != "pgvault"} for e in entries] == barman[
        "backups_list"
    ]
    assert [e["pgvault"]["written_by"] for e in entries] == ["barman-cloud", "barman-cloud"]
    assert [e["pgvault"]["compression"] for e in entries] == ["gzip", "gzip"]
    table = server.run("backup-list")
    assert [line.split()[0] for line in table.stdout.splitlines()[1:]] == [first, second]

    # backup-show: what barman-cloud records; no tables (no pgvault.json), said plainly.
    shown = json_out(server.run("backup-show", "second", "--format", "json"))
    assert shown["backup_id"] == second and shown["manifest"] is None
    assert shown["tables"] == [] and shown["backup_info"] == barman["backups_list"][1]
    console = server.run("backup-show", second).stdout
    assert "not recorded (barman-cloud writes no pgvault.json)" in console

    # verify: what it could and could not check.
    verified = server.run("verify", first)
    assert verified.returncode == 0, verified.stderr
    assert "not checked: no pgvault.json (barman-cloud wrote this backup)" in verified.stdout
    assert "read to the end: each decompresses and is a complete tar stream" in verified.stdout
    assert "WAL segment(s) needed to reach consistency" in verified.stdout
    data_key = archive_keys(dest, first)[0]
    original = flip_byte(dest, data_key)
    damaged = server.run("verify", first)
    assert damaged.returncode == 1 and f"{data_key}: unreadable archive" in damaged.stderr
    put_object(dest, data_key, original)

    drill = server.run(
        "verify", second, "--restore-drill", "--pgvault-command", pgvault_bin, timeout=900
    )
    assert drill.returncode == 0, drill.stderr
    assert "pg_amcheck --all: no corruption found" in drill.stdout

    # Keep annotations are barman-cloud's, both ways.
    assert server.run("backup-keep", first, "-r", "full").returncode == 0
    status = run_barman("backup-keep", dest, "--status", dest.url, SERVER, first).stdout
    assert status.strip() == "Keep: full"
    run_barman("backup-keep", dest, "--release", dest.url, SERVER, first)
    assert server.run("backup-keep", first, "--status").stdout.strip() == "Keep: nokeep"

    # pgvault deletes what barman-cloud wrote; barman-cloud sees the result.
    deleted = server.run("backup-delete", "-r", "REDUNDANCY 1")
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted backup {first} (DONE, OBSOLETE under REDUNDANCY 1)" in deleted.stdout
    assert _barman_ids(dest) == [second]
    assert not object_keys(dest, f"{SERVER}/base/{first}/")
