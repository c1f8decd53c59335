"""The Barman hook uploading to Azure (Azurite) and Google Cloud Storage (fake-gcs-server): a
real Barman 3.19.1 runs it after a pg_basebackup backup; verify passes, and both pgvault and
barman-cloud-restore bring the backup back for PostgreSQL to recover, with the same tables."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.e2e.test_barman_hook import _fill, restored_both_ways
from tests.support.barman_server import SERVER, make_barman_server
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.pitr import new_target
from tests.support.restore import run_barman


@pytest.mark.parametrize("provider", ["azure", "gcs"])
def test_barman_hook_uploads_to_the_cloud_and_the_backup_restores(
    make_dest: Callable[..., TestDestination], pgvault_bin: str, provider: str
) -> None:
    dest = make_dest(provider)
    server = make_barman_server(dest, pgvault_bin)
    with_pgvault = new_target()
    with_barman = new_target()
    try:
        tables = _fill(server)
        backup_id, _ = server.backup()  # Barman runs the post_backup_retry_script

        listed = run_barman("backup-list", dest, "--format", "json", dest.url, SERVER)
        ids = [b["backup_id"] for b in json.loads(listed.stdout)["backups_list"]]
        assert ids == [backup_id]
        prefix = f"{SERVER}/base/{backup_id}/"
        with dest.store() as store:
            names = sorted(o.key[len(prefix) :] for o in store.list_objects(prefix))
            stored_info = store.get_bytes(prefix + "backup.info")
        oid = str(server.cluster.one("select oid from pg_tablespace where spcname = 'ts1'"))
        assert names == [f"{oid}.tar", "backup.info", "backup_manifest", "data.tar", "pgvault.json"]
        with open(server.info_path(backup_id), "rb") as fh:
            assert stored_info == fh.read()

        checked = pgvault("verify", *dest.cli_args, dest.url, SERVER, backup_id, env=dest.env)
        assert checked.returncode == 0, (checked.stdout, checked.stderr)
        assert f"backup {backup_id}: verified" in checked.stdout

        bindir = server.cluster.bindir
        restored = restored_both_ways(
            dest, backup_id, bindir, pgvault_bin, with_pgvault, with_barman
        )
        assert restored == (tables, tables)
    finally:
        with_pgvault.drop()
        with_barman.drop()
        server.drop()
