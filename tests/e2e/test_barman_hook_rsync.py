"""The Barman hook after a `backup_method = rsync` backup: a real Barman 3.19.1 copies PGDATA
and a tablespace over ssh (OpenSSH's sshd on 127.0.0.1) and runs the hook, which uploads it to
moto S3; verify passes, and pgvault and barman-cloud-restore both bring it back for
PostgreSQL to recover with the same tables. rsync leaves no backup_manifest."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.test_barman_hook import _fill, restored_both_ways
from tests.support.barman_server import SERVER, make_barman_server
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.pitr import new_target
from tests.support.restore import run_barman
from tests.support.sshd import Sshd, start_sshd


@pytest.fixture
def sshd() -> Iterator[Sshd]:
    server = start_sshd()
    yield server
    server.stop()


def test_an_rsync_backup_is_uploaded_verified_and_restored(
    make_dest: Callable[..., TestDestination], pgvault_bin: str, sshd: Sshd
) -> None:
    dest = make_dest("s3")
    server = make_barman_server(
        dest,
        pgvault_bin,
        backup_method="rsync",
        options=(f"ssh_command = {sshd.ssh_command}", "reuse_backup = off"),
    )
    with_pgvault = new_target()
    with_barman = new_target()
    try:
        tables = _fill(server)
        backup_id, _ = server.backup()
        info = server.barman("show-backup", SERVER, backup_id).stdout
        assert "rsync" in info.lower(), info
        with open(os.path.join(sshd.work, "sshd.log")) as fh:
            assert "Accepted publickey for postgres" in fh.read()  # the copy went over ssh

        prefix = f"{SERVER}/base/{backup_id}/"
        with dest.store() as store:
            names = sorted(o.key[len(prefix) :] for o in store.list_objects(prefix))
        oid = str(server.cluster.one("select oid from pg_tablespace where spcname = 'ts1'"))
        assert names == [f"{oid}.tar", "backup.info", "data.tar", "pgvault.json"]
        listed = run_barman("backup-list", dest, "--format", "json", dest.url, SERVER)
        assert [b["backup_id"] for b in json.loads(listed.stdout)["backups_list"]] == [backup_id]

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
