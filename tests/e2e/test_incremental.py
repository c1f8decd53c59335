"""Incremental and differential backups end to end, on real servers.

A chain of a full backup and incrementals (and a differential) with DDL between them, on
PostgreSQL 15 (pages' LSNs) and 18 (WAL summaries); every point of the chain restored with
`pgvault restore --target-immediate`, started, and compared table by table with what the
source held at that backup (nothing writes while a backup runs). Then the fallbacks and
refusals: an unknown parent (exit 3), a FAILED parent (a full backup, the reason shown),
and barman-cloud never taking an incremental for a full backup.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.catalog.backup_info import FAILED, parse, serialize
from core.catalog.reader import Catalog
from core.postgres.walnames import segment_range
from tests.support.cli import pgvault, spawn
from tests.support.destinations import TestDestination, make_destination
from tests.support.emulators import Emulator
from tests.support.pg_versions import (
    server_bindir,
    server_env,
    tool_env,
    verifybackup_bindir,
    versioned_cluster,
)
from tests.support.pitr import SERVER, new_target, restore, restored_server
from tests.support.postgres import Cluster, wait_for_recovery_end
from tests.support.restore import run_barman
from tests.support.wal import archive_command
from tui import fmt
from tui.adapter import load_destination, server_refs
from tui.screens.backup import chain_text

Tables = dict[str, dict[str, tuple[int, str]]]


@dataclass
class Chain:
    cluster: Cluster
    dest: TestDestination
    major: int
    compression: str = "--zstd"
    points: dict[str, Tables] = field(default_factory=dict)  # backup ID -> tables at its end
    order: list[str] = field(default_factory=list)

    def backup(self, *flags: str) -> str:
        result = pgvault(
            "backup",
            "--immediate-checkpoint",
            self.compression,
            "-v",
            *flags,
            *self.cluster.conninfo_args(),
            *self.dest.cli_args,
            self.dest.url,
            SERVER,
            env=self.dest.env,
        )
        assert result.returncode == 0, result.stderr
        backup_id = result.stdout.strip()
        self.points[backup_id] = tables(self.cluster)
        self.order.append(backup_id)
        return backup_id

    def catalog(self) -> Catalog:
        return Catalog(self.dest.store(), SERVER)


def tables(cluster: Cluster) -> Tables:
    databases = [
        r[0]
        for r in cluster.sql(
            "select datname from pg_database "
            "where datname like 'db%' or datname = 'postgres' order by 1"
        )
    ]
    return {db: cluster.table_checksums(db) for db in databases}


def _source(major: int, dest: TestDestination, pgvault_bin: str) -> Cluster:
    settings: dict[str, object] = {"summarize_wal": "on"} if major >= 17 else {}
    cluster = versioned_cluster(
        major,
        archive_command=archive_command(pgvault_bin, dest.url, *dest.cli_args, "--zstd"),
        env=dest.env,
        settings={**settings, "wal_keep_size": "256MB"},
    )
    cluster.sql("create table accounts(id int primary key, owner text, balance numeric)")
    cluster.sql(
        "insert into accounts select g, 'owner ' || g, g * 1.5 from generate_series(1, 60000) g"
    )
    for name in ("dropped", "truncated", "rewritten"):
        cluster.sql(f"create table {name}(id int, note text)")
        cluster.sql(f"insert into {name} select g, md5(g::text) from generate_series(1, 5000) g")
    # The archiver (as postgres) makes the server's directory before a backup (as root) does.
    segment = cluster.one("select pg_walfile_name(pg_current_wal_lsn())")
    cluster.sql("select pg_switch_wal()")
    cluster.wait_archived(segment, timeout=180)
    return cluster


def _take_chain(chain: Chain) -> None:
    c = chain.cluster
    chain.backup()  # the full backup
    c.sql("update accounts set balance = balance + 1 where id % 97 = 0")
    c.sql("create table fresh(id int, note text)")
    c.sql("insert into fresh select g, 'fresh ' || g from generate_series(1, 3000) g")
    chain.backup("--incremental")
    c.sql("drop table dropped")
    c.sql("truncate truncated")
    c.sql("insert into truncated values (1, 'after truncate')")
    chain.backup("--incremental")
    c.sql("delete from rewritten where id % 2 = 0")
    c.sql("vacuum full rewritten")
    c.sql("create index accounts_owner on accounts(owner)")
    c.sql("update accounts set owner = owner || '!' where id between 100 and 200")
    chain.backup("--incremental")
    c.sql("create database db2")
    c.sql("create table t2(id int primary key, v text)", dbname="db2")
    c.sql("insert into t2 select g, md5(g::text) from generate_series(1, 2000) g", dbname="db2")
    chain.backup("--incremental")
    c.sql("update accounts set balance = 0 where id < 50")
    chain.backup("--differential")


@pytest.fixture(scope="module", params=[15, 18])
def chain(request: pytest.FixtureRequest, pgvault_bin: str) -> Iterator[Chain]:
    major = int(request.param)
    dest = make_destination("file", {})
    cluster = _source(major, dest, pgvault_bin)
    made = Chain(cluster, dest, major)
    try:
        _take_chain(made)
        yield made
    finally:
        cluster.drop()
        dest.drop()


def _stored(catalog: Catalog, backup_id: str) -> int:
    manifest = catalog.pgvault_manifest(backup_id)
    assert manifest is not None
    return sum(a.size for a in manifest.archives)


def test_chain_records_kind_parent_method_and_stores_less(chain: Chain) -> None:
    catalog = chain.catalog()
    full, *incrementals, differential = chain.order
    method = "wal-summary" if chain.major >= 18 else "page-lsn"
    parent = full
    sizes = {full: _stored(catalog, full)}
    for backup_id in incrementals:
        manifest = catalog.pgvault_manifest(backup_id)
        assert manifest is not None and manifest.incremental is not None
        record = manifest.incremental
        assert record["kind"] == "incremental"
        assert record["parent"] == parent
        assert record["method"] == method, record.get("method_note")
        assert catalog.get(backup_id).parent_backup_id == parent
        sizes[backup_id] = _stored(catalog, backup_id)
        parent = backup_id
    manifest = catalog.pgvault_manifest(differential)
    assert manifest is not None and manifest.incremental is not None
    assert manifest.incremental["kind"] == "differential"
    assert manifest.incremental["chain"] == [full]
    sizes[differential] = _stored(catalog, differential)
    print(f"\nPostgreSQL {chain.major} stored bytes: {json.dumps(sizes)}")
    # The first incremental changed a few pages of a 60000-row table: far less than the full.
    assert sizes[incrementals[0]] * 3 < sizes[full]


def test_every_point_of_the_chain_restores_and_matches(chain: Chain) -> None:
    bindir = server_bindir(chain.major)
    for backup_id in chain.order:
        target = new_target()
        try:
            restore(
                chain.dest,
                target,
                backup_id,
                "--target-immediate",
                "--target-action",
                "promote",
            )
            # Before PostgreSQL starts on it: the directory is exactly the backup's.
            verified = pg_verifybackup(chain.major, "-n", target.data)
            assert verified.returncode == 0, (backup_id, verified.stdout + verified.stderr)
            with restored_server(target, bindir, env=server_env(chain.major)) as server:
                wait_for_recovery_end(server)
                assert tables(server) == chain.points[backup_id], backup_id
        finally:
            target.drop()


def pg_verifybackup(major: int, *args: str) -> subprocess.CompletedProcess[str]:
    bindir = verifybackup_bindir(major)
    if bindir is None:
        pytest.skip(f"no pg_verifybackup of PostgreSQL {major} installed")
    return subprocess.run(
        [f"{bindir}/pg_verifybackup", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **tool_env(bindir)},
    )


def test_a_restored_chain_verifies_with_its_wal_and_a_changed_byte_fails(chain: Chain) -> None:
    """The written backup_manifest is the reconstructed directory's: WAL parses, damage shows."""
    last = chain.order[4]  # the newest incremental: four links
    info = chain.catalog().get(last)
    target = new_target()
    try:
        restored = restore(chain.dest, target, last, "-v")
        # The report describes the whole chain restored, and no assembled file was read back.
        summary = next(line for line in restored.stderr.splitlines() if "restored backup" in line)
        assert "with the 4 older backups of its chain" in summary, summary
        assert "archives of 5 backups" in summary, summary
        assert "0 read back" in restored.stderr, restored.stderr
        wal = os.path.join(target.base, "wal")
        os.mkdir(wal)
        assert info.begin_wal and info.end_wal
        for segment in segment_range(info.begin_wal, info.end_wal):
            fetched = pgvault(
                "wal-restore",
                *chain.dest.cli_args,
                chain.dest.url,
                SERVER,
                segment,
                f"{wal}/{segment}",
                env=chain.dest.env,
            )
            assert fetched.returncode == 0, fetched.stderr
        verified = pg_verifybackup(chain.major, "-w", wal, target.data)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "backup successfully verified" in verified.stdout
        # One byte of a relation file the chain assembled from blocks of several links.
        manifest = json.loads(Path(target.data, "backup_manifest").read_text())
        sizes = {f["Path"]: f["Size"] for f in manifest["Files"]}
        relid = chain.cluster.one("select pg_relation_filepath('accounts')")
        assert sizes[relid] > 8192
        with open(os.path.join(target.data, relid), "r+b") as fh:
            fh.seek(8192 + 100)
            byte = fh.read(1)
            fh.seek(8192 + 100)
            fh.write(bytes([byte[0] ^ 0xFF]))
        damaged = pg_verifybackup(chain.major, "-n", target.data)
        assert damaged.returncode != 0
        assert "checksum mismatch" in damaged.stderr and f'"{relid}"' in damaged.stderr
    finally:
        target.drop()


def test_backup_list_and_show_name_kind_parent_and_method(chain: Chain) -> None:
    listed = pgvault(
        "backup-list",
        "--format",
        "json",
        *chain.dest.cli_args,
        chain.dest.url,
        SERVER,
        env=chain.dest.env,
    )
    assert listed.returncode == 0, listed.stderr
    rows = {b["backup_id"]: b for b in json.loads(listed.stdout)["backups_list"]}
    full, first = chain.order[0], chain.order[1]
    assert rows[full]["pgvault"]["kind"] == "full"
    assert rows[first]["pgvault"]["kind"] == "incremental"
    assert rows[first]["pgvault"]["chain"] == [full]
    assert rows[first]["parent_backup_id"] == full
    assert rows[chain.order[-1]]["pgvault"]["kind"] == "differential"
    text = pgvault("backup-list", *chain.dest.cli_args, chain.dest.url, SERVER, env=chain.dest.env)
    line = next(x for x in text.stdout.splitlines() if x.startswith(f"├─ {first}"))
    assert full in line and ("page-lsn" in line or "wal-summary" in line)
    # The chain under its full backup, as the console lists it (oldest first here).
    ids = [x.split()[-1] if x.startswith(("├", "└")) else x for x in _first_cells(text.stdout)]
    assert ids == chain.order
    assert _first_cells(text.stdout)[-1] == f"└─ {chain.order[-1]}"
    shown = pgvault(
        "backup-show", *chain.dest.cli_args, chain.dest.url, SERVER, first, env=chain.dest.env
    )
    assert shown.returncode == 0, shown.stderr
    assert "incremental" in shown.stdout and full in shown.stdout
    assert f"{full} > {first}" in shown.stdout


def _first_cells(table: str) -> list[str]:
    """backup-list's Backup ID cells (with their chain prefix), under the header."""
    return [re.match(r"^\W*\d{8}T\d{6}", x)[0] for x in table.splitlines()[1:]]  # type: ignore[index]


def test_console_lists_the_chain_and_what_a_restore_reads(chain: Chain) -> None:
    view = load_destination(chain.dest.url)
    server = view.server(SERVER)
    assert server is not None
    refs = server_refs(view, server)
    full, *incrementals, differential = chain.order
    assert [(r.tree, r.info.backup_id, r.kind) for r in refs] == [
        ("", full, "full"),
        *(("├─ ", i, "incremental") for i in incrementals),
        ("└─ ", differential, "differential"),
    ]
    last = incrementals[-1]
    assert [b.backup_id for b in server.chain(last)] == [full, *incrementals]
    assert [b.backup_id for b in server.chain(differential)] == [full, differential]
    text = chain_text(server.chain(last), server, last).plain
    total = sum(server.stored[b] for b in [full, *incrementals])
    assert f"a restore reads {len(incrementals) + 1} backups, {fmt.size(total)} stored" in text


def test_verify_reads_an_incremental_and_checks_its_chain(chain: Chain) -> None:
    last = chain.order[-2]
    result = pgvault(
        "verify", *chain.dest.cli_args, chain.dest.url, SERVER, last, env=chain.dest.env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every backup it builds on is there and DONE" in result.stdout
    assert f"backup {last}: verified" in result.stdout


def test_deleting_a_parent_is_refused_naming_its_dependents(chain: Chain) -> None:
    full = chain.order[0]
    refused = pgvault(
        "backup-delete",
        "-b",
        full,
        *chain.dest.cli_args,
        chain.dest.url,
        SERVER,
        env=chain.dest.env,
    )
    assert refused.returncode == 1, refused.stderr
    assert chain.order[1] in refused.stderr
    assert chain.catalog().get(full).is_done


def test_unknown_parent_is_bad_input(chain: Chain) -> None:
    result = pgvault(
        "backup",
        "--incremental-from",
        "20010101T000000",
        *chain.cluster.conninfo_args(),
        *chain.dest.cli_args,
        chain.dest.url,
        SERVER,
        env=chain.dest.env,
    )
    assert result.returncode == 3, result.stderr
    assert "20010101T000000 not found" in result.stderr


def test_a_failed_parent_gives_a_full_backup_saying_why(chain: Chain) -> None:
    catalog = chain.catalog()
    store = chain.dest.store()
    last = chain.order[-1]
    key = catalog.layout.backup_info(last)
    original = store.get_bytes(key)
    store.put_bytes(key, serialize(parse(last, original).with_changes(status=FAILED)))
    try:
        result = pgvault(
            "backup",
            "-v",
            "--incremental-from",
            last,
            *chain.cluster.conninfo_args(),
            *chain.dest.cli_args,
            chain.dest.url,
            SERVER,
            env=chain.dest.env,
        )
    finally:
        store.put_bytes(key, original)
    assert result.returncode == 0, result.stderr
    backup_id = result.stdout.strip()
    assert f"parent {last} is FAILED" in result.stderr
    manifest = chain.catalog().pgvault_manifest(backup_id)
    assert manifest is not None and manifest.incremental is not None
    assert manifest.incremental["kind"] == "full"
    assert "FAILED" in manifest.incremental["fallback"]
    assert chain.catalog().get(backup_id).parent_backup_id is None


def test_latest_passes_over_backups_whose_chain_lost_a_link(chain: Chain) -> None:
    """`restore latest` with a target restores the newest backup it can: not one whose
    chain lost a link (here the second incremental, marked FAILED), but the newest before
    the target whose whole chain is DONE."""
    catalog = chain.catalog()
    first, second, third, fourth = chain.order[1:5]
    assert catalog.get(fourth).parent_backup_id == third  # built on the link to be lost
    stop = catalog.get(fourth).end_xlog
    assert stop
    store = chain.dest.store()
    key = catalog.layout.backup_info(second)
    original = store.get_bytes(key)
    store.put_bytes(key, serialize(parse(second, original).with_changes(status=FAILED)))
    target = new_target()
    try:
        restored = restore(chain.dest, target, "latest", "--target-lsn", stop)
        assert restored.stdout.strip() == first
    finally:
        store.put_bytes(key, original)
        target.drop()


def test_an_incremental_killed_mid_way_leaves_the_chain_usable(chain: Chain) -> None:
    c = chain.cluster
    c.sql("update accounts set owner = owner || '?'")  # every page of the table changes
    parent = chain.catalog().backups()[-1].backup_id
    proc = spawn(
        "backup",
        "--incremental",
        "--max-bandwidth",
        "200KB",
        *c.conninfo_args(),
        *chain.dest.cli_args,
        chain.dest.url,
        SERVER,
        env=chain.dest.env,
    )
    deadline = time.monotonic() + 120
    while not any(b.status == "STARTED" for b in chain.catalog().backups()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    time.sleep(1.0)
    proc.kill()  # kill -9: no cleanup at all
    proc.wait(30)
    after = chain.backup("--incremental")
    manifest = chain.catalog().pgvault_manifest(after)
    assert manifest is not None and manifest.incremental is not None
    assert manifest.incremental["parent"] == parent  # never the killed one
    target = new_target()
    try:
        restore(chain.dest, target, after, "--target-immediate", "--target-action", "promote")
        with restored_server(target, server_bindir(chain.major), server_env(chain.major)) as db:
            wait_for_recovery_end(db)
            assert tables(db) == chain.points[after]
    finally:
        target.drop()


def test_barman_cloud_never_restores_an_incremental_as_full(
    emulators: dict[str, Emulator], pgvault_bin: str
) -> None:
    dest = make_destination("s3", emulators)
    cluster = _source(15, dest, pgvault_bin)
    try:
        chain = Chain(cluster, dest, 15, compression="--gzip")  # barman-cloud 3.19 reads no zstd
        full = chain.backup()
        cluster.sql("update accounts set balance = 7 where id < 10")
        incremental = chain.backup("--incremental")
        target = new_target()
        try:
            refused = run_barman(
                "restore", dest, dest.url, SERVER, incremental, target.data, check=False
            )
            assert refused.returncode != 0
            assert "Missing file" in refused.stderr  # it fails loudly, naming what it lacks
            assert not os.path.exists(os.path.join(target.data, "PG_VERSION"))
            restored = run_barman("restore", dest, dest.url, SERVER, full, target.data + "-full")
            assert restored.returncode == 0
            assert os.path.exists(os.path.join(target.data + "-full", "PG_VERSION"))
        finally:
            target.drop()
    finally:
        cluster.drop()
        dest.drop()
