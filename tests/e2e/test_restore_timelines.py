"""A restore follows one timeline's history: the backup it chooses and the WAL it checks.

A copy restored from the first backup and promoted makes timeline 2 in the source's archive,
while the source goes on on timeline 1 and takes a backup after the fork. Recovery follows
timeline 2 (PostgreSQL's default, latest): `latest` restores the backup on 2's history, and
the restored server holds timeline 2's rows; the backup after the fork named explicitly is
bad input (PostgreSQL would refuse it: "requested timeline 2 is not a child of this
server's history"). A hole in timeline 2's WAL before a target LSN fails the restore, unless
accepted; restoring timeline 1 does not look at timeline 2's WAL.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from core.catalog.layout import ServerLayout
from core.postgres.walnames import DEFAULT_SEGMENT_SIZE as SEGMENT
from core.postgres.walnames import Segment, format_lsn, is_segment, parse_lsn
from tests.support.destinations import TestDestination
from tests.support.pitr import (
    SERVER,
    CleanCluster,
    Source,
    Target,
    make_source,
    new_target,
    restore,
    restored_server,
    start_clean,
)
from tests.support.postgres import Cluster, wait_for_recovery_end

SHARED = list(range(1, 11))  # committed on timeline 1 before the fork
ON_TWO = list(range(101, 111))  # committed on timeline 2 (the promoted copy)
ON_ONE = list(range(201, 211))  # committed on timeline 1 after the fork


@dataclass
class Forked:
    source: Source
    before: str  # the backup on timeline 2's history
    after: str  # the backup taken on timeline 1 after the fork
    lsn_on_two: str  # after ON_TWO was committed on timeline 2


@pytest.fixture
def source(make_dest: Callable[..., TestDestination], pgvault_bin: str) -> Iterator[Source]:
    made = make_source(make_dest("file"), pgvault_bin, scale=1)
    yield made
    made.cluster.drop()


def _rows(cluster: Cluster, ids: list[int], phase: str) -> None:
    cluster.sql("insert into marks select g, %s from unnest(%s::int[]) g", (phase, ids))


def _switch(cluster: Cluster) -> None:
    """Close the current segment and wait until it is archived."""
    segment = cluster.one("select pg_walfile_name(pg_current_wal_lsn())")
    cluster.sql("select pg_switch_wal()")
    cluster.wait_archived(segment, timeout=180)


def _promote_a_copy(source: Source, backup: str, lsn: str) -> tuple[CleanCluster, Target]:
    """The backup restored to `lsn` and promoted, archiving into the source's archive."""
    target = new_target()
    flags = ["--target-lsn", lsn, "--target-action", "promote", "--archive-mode", "preserve"]
    restore(source.dest, target, backup, *flags)
    copy = start_clean(target.data, source.cluster.bindir)
    wait_for_recovery_end(copy)
    copy.sql("checkpoint")
    assert copy.one("select timeline_id from pg_control_checkpoint()") == 2
    return copy, target


@pytest.fixture
def forked(source: Source) -> Iterator[Forked]:
    cluster = source.cluster
    # The archiver (postgres) makes the server's directory first: a backup run as root
    # making it first leaves it unwritable to archive_command, and the backup waits for ever.
    source.archive_everything()
    before = source.backup("--zstd")
    _rows(cluster, SHARED, "shared")
    fork = cluster.one("select pg_current_wal_lsn()::text")
    _switch(cluster)
    copy, copy_dir = _promote_a_copy(source, before, fork)
    try:
        _rows(copy, ON_TWO, "two")
        lsn_on_two = copy.one("select pg_current_wal_lsn()::text")
        for n in range(2):
            _switch(copy)
            _rows(copy, [1000 + n], "two-more")
        _switch(copy)
    finally:
        copy.stop("immediate")
        shutil.rmtree(copy.base, ignore_errors=True)
        copy_dir.drop()
    _rows(cluster, ON_ONE, "one")
    after = source.backup("--zstd")
    for n in range(6):  # timeline 1 runs well past timeline 2
        _rows(cluster, [2000 + n], "one-more")
        _switch(cluster)
    forked = Forked(source, before, after, lsn_on_two)
    # Timeline 1's newest segment is past timeline 2's: a check looking at the newest
    # segment of any timeline takes a target past timeline 2's WAL for archived.
    one, two = Segment.parse(_archived(source, 1)[-1]), Segment.parse(_archived(source, 2)[-1])
    assert one.segno > two.segno + 2 and parse_lsn(lsn_on_two) < two.segno * SEGMENT
    yield forked


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("WARNING:")]


def _archived(source: Source, timeline: int) -> list[str]:
    """The names of `timeline`'s full segments in the archive, in WAL order."""
    layout = ServerLayout(SERVER)
    with source.dest.store() as store:
        keys = {o.key: layout.parse_wal(o.key) for o in store.list_objects(layout.wals_prefix)}
    names = [parsed[0] for parsed in keys.values() if parsed is not None]
    return sorted(n for n in names if is_segment(n) and int(n[:8], 16) == timeline)


def _key(source: Source, name: str) -> str:
    layout = ServerLayout(SERVER)
    with source.dest.store() as store:
        for item in store.list_objects(layout.wals_prefix):
            parsed = layout.parse_wal(item.key)
            if parsed is not None and parsed[0] == name:
                return item.key
    raise AssertionError(f"{name} is not archived")


def test_latest_restores_the_backup_on_the_followed_timelines_history(forked: Forked) -> None:
    source = forked.source
    target = new_target()
    try:
        chosen = restore(source.dest, target, "latest")
        assert chosen.stdout.strip() == forked.before, chosen.stderr
        with restored_server(target, source.cluster.bindir) as server:
            wait_for_recovery_end(server)
            ids = [r[0] for r in server.sql("select id from marks where id < 1000 order by id")]
            assert ids == SHARED + ON_TWO
        shutil.rmtree(target.base)

        chosen = restore(source.dest, target, "latest", "--target-tli", "2")
        assert chosen.stdout.strip() == forked.before
        shutil.rmtree(target.base)

        # Timeline 1 archived far past timeline 2: a target past 2's archive is warned about.
        two = Segment.parse(_archived(source, 2)[-1])
        past_two = format_lsn((two.segno + 2) * SEGMENT)
        result = restore(source.dest, target, "latest", "--target-lsn", past_two)
        [warning] = _warnings(result.stderr)
        assert f"recovery target LSN {past_two} lies past the archived WAL of timeline 2" in (
            warning
        )
        shutil.rmtree(target.base)

        refused = restore(source.dest, target, forked.after, check=False)
        assert refused.returncode == 3, refused.stderr
        assert f"backup {forked.after} (timeline 1," in refused.stderr
        assert "not on the history of timeline 2" in refused.stderr
        assert "Traceback" not in refused.stderr and len(refused.stderr.splitlines()) == 1

        # The backup of timeline 1 restores when recovery follows timeline 1.
        chosen = restore(source.dest, target, forked.after, "--target-tli", "current")
        assert chosen.stdout.strip() == forked.after
    finally:
        target.drop()


def test_a_target_past_a_hole_in_the_followed_timeline_fails_unless_accepted(
    forked: Forked,
) -> None:
    source = forked.source
    missing = _archived(source, 2)[0]
    key = _key(source, missing)
    with source.dest.store() as store:
        store.delete_many([key])
    target = new_target()
    try:
        flags = ["--target-lsn", forked.lsn_on_two]
        refused = restore(source.dest, target, "latest", *flags, check=False)
        assert refused.returncode == 1, refused.stderr
        assert "lies past a hole in the WAL" in refused.stderr
        assert f"first missing segment {missing}" in refused.stderr
        assert "--accept-wal-gap" in refused.stderr and "Traceback" not in refused.stderr

        accepted = restore(
            source.dest, target, "latest", "--target-lsn", forked.lsn_on_two, "--accept-wal-gap"
        )
        assert accepted.stdout.strip() == forked.before
        assert any(
            missing in w and "accepted with --accept-wal-gap" in w
            for w in _warnings(accepted.stderr)
        ), accepted.stderr
        shutil.rmtree(target.base)

        # Timeline 1's recovery never reads timeline 2's WAL: its hole is not in the way.
        chosen = restore(source.dest, target, "latest", "--target-tli", "1")
        assert chosen.stdout.strip() == forked.after
        assert _warnings(chosen.stderr) == []
    finally:
        target.drop()
