"""A whole region lost, nothing lost: archive_command with `--secondary-destination`.

A cluster archives its WAL into a local directory and, through the same archive_command,
into moto's S3. A backup taken into the directory is copied to S3 (`pgvault copy`, no
--with-wal: the WAL after the backup reaches S3 through archive_command alone). Rows are
committed; the directory is then deleted and the backup restored from S3 to a time between
two sets of rows: PostgreSQL replays WAL it can only have found in the secondary.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from core.catalog.layout import ServerLayout
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.pitr import Source, new_target, restore, restored_server
from tests.support.postgres import (
    as_postgres,
    chown_tree,
    make_cluster,
    wait_for_recovery_end,
    world_dir,
)
from tests.support.wal import archive_command, stop_pushers

SERVER = "pg1"


@pytest.fixture
def spool_root() -> Iterator[str]:
    """The --async spool; pushers left running are stopped (by their pid) afterwards."""
    root = world_dir("pgvault-copyspool-")
    yield root
    stop_pushers(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_wal_archived_to_a_secondary_restores_there_with_the_primary_gone(
    mode: str, make_dest: Callable[..., TestDestination], pgvault_bin: str, spool_root: str
) -> None:
    local, s3 = make_dest("file"), make_dest("s3")
    # Owned by postgres, as the README's walkthrough has it: else the root-run backup and
    # the first archive_command race to create it, and a root-owned one refuses postgres.
    os.makedirs(local.url.removeprefix("file://"))
    chown_tree(local.bucket)
    s3_url = f"{s3.url}?AWS_ENDPOINT={s3.config.endpoint_url}"
    fast = ["--async", "--spool-dir", spool_root] if mode == "async" else []
    command = archive_command(
        pgvault_bin, local.url, "--zstd", *fast, "--secondary-destination", s3_url
    )
    cluster = make_cluster(archive_command=command, env=s3.env, settings={"wal_keep_size": "256MB"})
    try:
        as_postgres(
            [f"{cluster.bindir}/pgbench", "-i", "-q", "-s", "1", *cluster.conninfo_args()],
            timeout=300,
        )
        cluster.sql("create table marks(id int primary key, phase text)")
        source = Source(cluster, local, pgvault_bin)
        backup = source.backup("--gzip")
        copied = pgvault("copy", local.url, SERVER, backup, "--to", s3_url, "--format", "json")
        assert copied.returncode == 0, copied.stderr
        marks = source.commit_marks()
        source.archive_everything()
        last = cluster.one("select last_archived_wal from pg_stat_archiver")
        with s3.store() as store:  # acknowledged only once S3 held it too
            assert any(True for _ in store.list_objects(ServerLayout(SERVER).wal_dir(last) + last))
    finally:
        cluster.drop()
    shutil.rmtree(local.bucket)  # the primary region is lost

    target = new_target()
    s3_cli = TestDestination("s3", s3_url, s3.bucket, s3.config, env=s3.env)
    try:
        restore(s3_cli, target, backup, "--target-time", marks.time)
        with restored_server(target, cluster.bindir) as server:
            wait_for_recovery_end(server)
            assert "recovery stopping before commit of transaction" in server.server_log()
            rows = [r[0] for r in server.sql("select id from marks order by id")]
            assert rows == marks.before
            assert server.one("select count(*) from pgbench_accounts") == 100000
    finally:
        target.drop()


def test_secondary_destination_bad_input(make_dest: Callable[..., TestDestination]) -> None:
    local = make_dest("file")
    cases = [
        (["--secondary-destination", "ftp://x/y"], "ftp"),
        (["--secondary-destination", local.url], "primary destination itself"),
    ]
    for flags, words in cases:
        result = pgvault("wal-archive", *flags, local.url, SERVER, "/tmp/000000010000000000000001")
        stderr = result.stderr.strip()
        assert result.returncode == 3, (flags, result.returncode, stderr)
        assert len(stderr.splitlines()) == 1 and words in stderr, stderr
