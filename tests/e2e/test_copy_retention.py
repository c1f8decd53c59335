"""Retention on a copy destination: `backup-delete -r` run there expires copies as it expires
backups anywhere, and keeps the WAL the remaining copies need.

A cluster archives WAL with pgvault into a directory; three backups are taken there, rows are
committed after the third, and everything (`copy --all`: every backup and the whole WAL
archive) is copied to moto's S3. `backup-delete -r "REDUNDANCY 2"` against S3 deletes the
oldest copy and the WAL before the second backup's begin, and nothing else; the source is
untouched. The second backup is then restored from S3 to a time after the third: PostgreSQL
replays the WAL across both remaining backups from the copy, and exactly the rows committed
before the target are there. `copy --refresh` at the source then drops the expired copy
from the source's record.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from core.catalog.copies import read_copies
from core.catalog.layout import ServerLayout
from core.catalog.reader import Catalog
from core.postgres.walnames import is_segment
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.pitr import make_source, new_target, restore, restored_server
from tests.support.postgres import wait_for_recovery_end
from tests.support.wal import archived_names

SERVER = "pg1"


def test_retention_on_the_copy_destination_expires_copies_and_keeps_the_wal_they_need(
    make_dest: Callable[..., TestDestination], pgvault_bin: str
) -> None:
    local, s3 = make_dest("file"), make_dest("s3")
    s3_url = f"{s3.url}?AWS_ENDPOINT={s3.config.endpoint_url}"
    s3_cli = TestDestination("s3", s3_url, s3.bucket, s3.config, env=s3.env)
    source = make_source(local, pgvault_bin, scale=1)
    try:
        first = source.backup("--gzip")
        source.cluster.sql("insert into marks select g, 'early' from generate_series(-20, -11) g")
        source.archive_everything()
        second = source.backup("--gzip")
        source.cluster.sql("insert into marks select g, 'middle' from generate_series(-10, -1) g")
        source.archive_everything()
        third = source.backup("--gzip")
        marks = source.commit_marks()
        source.archive_everything()
        copied = pgvault("copy", local.url, SERVER, "--all", "--to", s3_url)
        assert copied.returncode == 0, copied.stderr
    finally:
        source.cluster.drop()

    with s3.store() as store:
        wal_before = set(archived_names(store, SERVER))
        infos = {b.backup_id: b for b in Catalog(store, SERVER).backups()}
    assert sorted(infos) == [first, second, third]
    cutoff = infos[second].begin_wal or ""
    assert any(is_segment(n) and n < cutoff for n in wal_before)  # there is WAL to expire

    expired = pgvault(
        "backup-delete", s3_url, SERVER, "-r", "REDUNDANCY 2", "--format", "json", env=s3.env
    )
    assert expired.returncode == 0, expired.stderr
    report = json.loads(expired.stdout)
    assert report, report
    with s3.store() as store:
        assert [b.backup_id for b in Catalog(store, SERVER).backups()] == [second, third]
        wal_after = set(archived_names(store, SERVER))
        assert not any(True for _ in store.list_objects(ServerLayout(SERVER).backup_prefix(first)))
    # the WAL segments before the oldest remaining copy went, every one from its begin on stayed
    segments = {n for n in wal_after if is_segment(n)}
    assert segments == {n for n in wal_before if is_segment(n) and n >= cutoff}
    assert wal_after < wal_before
    with local.store() as store:  # the source is untouched
        assert [b.backup_id for b in Catalog(store, SERVER).backups()] == [first, second, third]

    target = new_target()
    try:
        restore(s3_cli, target, second, "--target-time", marks.time)
        with restored_server(target, source.cluster.bindir) as server:
            wait_for_recovery_end(server)
            rows = [r[0] for r in server.sql("select id from marks where id > 0 order by id")]
            assert rows == marks.before
            assert server.one("select count(*) from marks where id < 0") == 20
            assert server.one("select count(*) from pgbench_accounts") == 100000
    finally:
        target.drop()

    refreshed = pgvault("copy", local.url, SERVER, "--refresh", "--format", "json")
    assert refreshed.returncode == 0, refreshed.stderr
    states = {c["backup_id"]: c["state"] for c in json.loads(refreshed.stdout)["copies"]}
    assert states == {first: "missing", second: "complete", third: "complete"}
    with local.store() as store:
        assert sorted(read_copies(store, SERVER)) == [second, third]
