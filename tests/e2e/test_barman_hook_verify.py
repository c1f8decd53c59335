"""`verify` on a backup a real Barman server took and the hook uploaded: the upload writes
pgvault.json and keeps pg_basebackup's backup_manifest, so verify checks every archive and
file against them, and a flipped byte in a stored archive fails it, naming the archive."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.support.barman_server import SERVER, BarmanServer, make_barman_server
from tests.support.catalog import flip_byte, put_object
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.postgres import add_tablespace
from tests.support.restore import run_barman


@pytest.fixture
def barman_s3(
    make_dest: Callable[..., TestDestination], pgvault_bin: str
) -> Iterator[tuple[BarmanServer, TestDestination]]:
    dest = make_dest("s3")
    server = make_barman_server(dest, pgvault_bin)
    yield server, dest
    server.drop()


def test_verify_checks_a_hook_upload_and_names_a_flipped_byte(
    barman_s3: tuple[BarmanServer, TestDestination],
) -> None:
    server, dest = barman_s3
    cluster = server.cluster
    add_tablespace(cluster, "ts1")
    cluster.sql("create table accounts(id int primary key, note text)")
    cluster.sql("insert into accounts select g, md5(g::text) from generate_series(1, 20000) g")
    cluster.sql("create table blobs(id int, payload text) tablespace ts1")
    cluster.sql(
        "insert into blobs select g, repeat(md5(g::text), 50) from generate_series(1, 300) g"
    )
    backup_id, _ = server.backup()
    prefix = f"{SERVER}/base/{backup_id}/"
    with dest.store() as store:
        names = sorted(o.key[len(prefix) :] for o in store.list_objects(prefix))
        manifest = json.loads(store.get_bytes(prefix + "pgvault.json"))
        pg_manifest = store.get_bytes(prefix + "backup_manifest")
    oid = str(cluster.one("select oid from pg_tablespace where spcname = 'ts1'"))
    assert names == [f"{oid}.tar", "backup.info", "backup_manifest", "data.tar", "pgvault.json"]
    with open(f"{server.backup_dir(backup_id)}/data/backup_manifest", "rb") as fh:
        assert pg_manifest == fh.read()  # pg_basebackup's, as Barman kept it
    paths = {f["path"] for f in manifest["files"]}
    assert {"backup_label", "global/pg_control"} <= paths
    assert any(p.startswith(f"pg_tblspc/{oid}/") for p in paths)
    # barman-cloud still lists it (the extra objects are not backups to it)
    listed = run_barman("backup-list", dest, "--format", "json", dest.url, SERVER)
    assert [b["backup_id"] for b in json.loads(listed.stdout)["backups_list"]] == [backup_id]

    def verify() -> subprocess.CompletedProcess[str]:
        return pgvault("verify", *dest.cli_args, dest.url, SERVER, backup_id, env=dest.env)

    good = verify()
    assert good.returncode == 0, (good.stdout, good.stderr)
    assert "match pgvault.json" in good.stdout and "every recorded file is present" in good.stdout
    assert "backup_manifest: its own SHA-256 checksum matches, and it lists the same" in good.stdout
    assert f"backup {backup_id}: verified" in good.stdout

    damaged = prefix + "data.tar"
    original = flip_byte(dest, damaged)
    try:
        bad = verify()
        assert bad.returncode == 1, (bad.stdout, bad.stderr)
        assert "Traceback" not in bad.stderr
        assert f"{damaged}: " in bad.stderr and "checksum" in bad.stderr, bad.stderr
        assert f"{prefix}{oid}.tar:" not in bad.stderr
    finally:
        put_object(dest, damaged, original)
    assert verify().returncode == 0

    # pgvault.json makes it look like pgvault's own, but it is never an incremental's parent.
    taken = pgvault(
        "backup",
        "--incremental",
        "-v",
        *cluster.conninfo_args(),
        *dest.cli_args,
        dest.url,
        SERVER,
        env=dest.env,
    )
    assert taken.returncode == 0, taken.stderr
    assert f"parent {backup_id} is a Barman backup (uploaded by the hook)" in taken.stderr
    assert "taking a full backup instead" in taken.stderr
