"""A restore's recovery target, checked against the WAL archive before anything is written.

A time or LSN target past everything archived cannot be reached yet: PostgreSQL 13 and
later refuse to start ("recovery ended before configured recovery target was reached").
The restore says so as a warning with the way out, and once the source archives past the
target the same restored directory starts and stops there. A segment missing inside the
backup's own WAL fails a restore with a target too: no target makes that backup consistent.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from core.catalog.reader import Catalog
from core.postgres.walnames import format_lsn, parse_lsn
from tests.support.destinations import TestDestination
from tests.support.pitr import (
    SERVER,
    Source,
    make_source,
    new_target,
    restore,
    start_clean,
    wait_log,
    wait_stopped,
)

NOT_REACHED = "recovery ended before configured recovery target was reached"


@pytest.fixture
def source(make_dest: Callable[..., TestDestination], pgvault_bin: str) -> Iterator[Source]:
    made = make_source(make_dest("file"), pgvault_bin)
    yield made
    made.cluster.drop()


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("WARNING:")]


def test_a_target_past_the_archive_is_warned_about_and_reached_once_the_source_archives_past_it(
    source: Source,
) -> None:
    backup = source.backup("--zstd")
    cluster = source.cluster
    cluster.sql("insert into marks values (1, 'before')")
    inside = cluster.one("select clock_timestamp()::text")
    cluster.sql("insert into marks values (2, 'before')")
    source.archive_everything()
    past = cluster.one("select clock_timestamp()::text")
    lsn_past = format_lsn(parse_lsn(cluster.one("select pg_current_wal_lsn()::text")) + 2**26)

    target = new_target()
    try:
        result = restore(source.dest, target, backup, "--target-time", inside)
        assert _warnings(result.stderr) == []  # archived WAL holds commits after it
        shutil.rmtree(target.base)

        result = restore(source.dest, target, backup, "--target-lsn", lsn_past)
        [warning] = _warnings(result.stderr)
        assert f"recovery target LSN {lsn_past} lies past the archived WAL" in warning
        shutil.rmtree(target.base)

        result = restore(source.dest, target, backup, "--target-time", past)
        [warning] = _warnings(result.stderr)
        assert "is after the newest archived WAL was stored" in warning
        assert "pg_switch_wal()" in warning and "restore without a target" in warning

        # What the warning foretells: PostgreSQL will not open it yet...
        server = start_clean(target.data, cluster.bindir, wait=False)
        try:
            server.start()  # open read-only once consistent, then shut down at the end
            wait_log(server, NOT_REACHED)
            wait_stopped(server)
            # ...and the way out it names: the source archives a commit after the target.
            cluster.sql("insert into marks values (3, 'after')")
            source.archive_everything()
            server.start()
            wait_log(server, "recovery stopping before commit of transaction")
            wait_log(server, "pausing at the end of recovery")
            assert [r[0] for r in server.sql("select id from marks order by id")] == [1, 2]
        finally:
            server.stop("immediate")
            shutil.rmtree(server.base, ignore_errors=True)
    finally:
        target.drop()


def test_a_segment_missing_from_the_backups_own_wal_fails_a_restore_with_a_target(
    source: Source,
) -> None:
    backup = source.backup("--zstd")
    source.archive_everything()
    with source.dest.store() as store:
        begin = Catalog(store, SERVER).get(backup).begin_wal
        assert begin
        names = {o.key.rsplit("/", 1)[-1]: o.key for o in store.list_objects(f"{SERVER}/wals/")}
        keys = [key for name, key in names.items() if name.split(".")[0] == begin]
        keys = [key for key in keys if ".backup" not in key]
        assert len(keys) == 1
        store.delete_many(keys)

    target = new_target()
    try:
        result = restore(source.dest, target, backup, "--target-immediate", check=False)
        assert result.returncode == 1, result.stderr
        assert f"cannot reach consistency: WAL segment {begin} is missing" in result.stderr
        assert "Traceback" not in result.stderr
        assert not os.path.exists(os.path.join(target.data, "PG_VERSION"))
    finally:
        target.drop()
