"""The fast path without PostgreSQL: a pg_wal directory of real segments, the real pusher."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from core.crypto.keys import generate_identity
from core.encryption import keyfile_key
from core.keyring import init_keys
from core.wal.archive import ArchiveResult, ArchiveSettings, WalArchiver
from core.wal.errors import WalConflict
from core.wal.files import FileIdentity
from core.wal.spool import ArchiveSpool, PusherFailed, archive_through_spool
from tests.support.destinations import TestDestination
from tests.support.pusher import PusherThread, mark_done
from tests.support.wal import WalSample, archived_bytes, archived_names, private_parent

AGE_HEADER = b"age-encryption.org/v1\n"


@pytest.fixture
def spool(scratch_dirs: Callable[[str], str]) -> ArchiveSpool:
    """The spool one pusher and its archive_command calls share."""
    return ArchiveSpool(os.path.join(private_parent(scratch_dirs), "pg1.test"))


def test_the_pusher_stores_every_ready_file_and_reports_each_batch(
    destination: TestDestination,
    pg_wal: str,
    wal_sample: WalSample,
    spool: ArchiveSpool,
) -> None:
    with destination.store() as store:
        archiver = WalArchiver(store, "pg1", ArchiveSettings("zstd", 1))
        runner = PusherThread(archiver, spool, pg_wal)
        names = [*wal_sample.segments, wal_sample.backup_label]
        for name in sorted(names):
            outcome = archive_through_spool(spool, os.path.join(pg_wal, name), 30, runner.start)
            assert "stored by the pusher" in outcome
            mark_done(pg_wal, name)
        runner.join()
        stored = archived_names(store, "pg1")
        assert sorted(stored) == sorted(names)
        for name in names:
            assert archived_bytes(store, stored[name]) == wal_sample.read(name)
    assert spool.markers() == []  # every marker was consumed
    snapshots = [b.snapshot() for b in runner.batches]
    assert sum(s.files_done for s in snapshots) == len(names)
    assert all(s.files_done == s.files_total and s.phase == "done" for s in snapshots)
    assert all(any("stored" in line for line in b.logged) for b in runner.batches)  # type: ignore[attr-defined]
    assert sum(s.bytes_total or 0 for s in snapshots) == sum(
        os.path.getsize(wal_sample.path(n)) for n in names
    )


def test_no_marker_acknowledges_other_bytes_and_conflicts_reach_archive_command(
    destination: TestDestination,
    pg_wal: str,
    wal_sample: WalSample,
    spool: ArchiveSpool,
) -> None:
    first = wal_sample.segments[0]
    path = os.path.join(pg_wal, first)
    with destination.store() as store:
        archiver = WalArchiver(store, "pg1", ArchiveSettings())
        runner = PusherThread(archiver, spool, pg_wal)
        archive_through_spool(spool, path, 30, runner.start)
        runner.join()

        assert spool.read_marker(first) is None  # consumed when archive_command returned 0
        # A marker for the stored file is left behind, then the file is replaced by other
        # bytes under the same name: the marker must not acknowledge them.
        stored_identity = FileIdentity.of(os.stat(path))
        spool.write_marker(first, stored_identity, "pg1/wals/stale")
        changed = bytearray(wal_sample.read(first))
        changed[5_000_000] ^= 1
        os.remove(path)
        Path(path).write_bytes(bytes(changed))
        assert FileIdentity.of(os.stat(path)) != stored_identity
        with pytest.raises(PusherFailed, match="different content") as caught:
            archive_through_spool(spool, path, 30, runner.start)
        assert caught.value.exit_code == WalConflict.exit_code == 1
        runner.join()
        assert archived_bytes(store, archived_names(store, "pg1")[first]) == wal_sample.read(first)


class _BuggyArchiver(WalArchiver):
    """A fault standing for a bug: every upload raises what no handler expects."""

    def archive_file(self, *args: object, **kwargs: object) -> ArchiveResult:
        raise RuntimeError("index out of step")


def test_an_unexpected_error_reaches_archive_command_in_the_synchronous_words_and_names_the_log(
    destination: TestDestination,
    pg_wal: str,
    wal_sample: WalSample,
    spool: ArchiveSpool,
) -> None:
    first = wal_sample.segments[0]
    with destination.store() as store:
        runner = PusherThread(_BuggyArchiver(store, "pg1", ArchiveSettings()), spool, pg_wal)
        with pytest.raises(PusherFailed) as caught:
            archive_through_spool(spool, os.path.join(pg_wal, first), 30, runner.start)
        runner.join()
        assert archived_names(store, "pg1") == {}
    assert str(caught.value) == (
        f"unexpected error: RuntimeError: index out of step (the pusher's log is {spool.log_path})"
    )
    assert caught.value.exit_code == 4  # the synchronous path's code for the unexpected


def test_a_running_pusher_seals_from_the_next_batch_after_keys_init_and_stops_if_the_key_file_goes(
    destination: TestDestination,
    pg_wal: str,
    wal_sample: WalSample,
    spool: ArchiveSpool,
) -> None:
    first, second, third = wal_sample.segments[:3]
    status = Path(pg_wal, "archive_status")
    for later in (second, third):  # PostgreSQL has not finished them yet
        (status / f"{later}.ready").rename(status / f"{later}.later")
    with destination.store() as store:
        # One archiver for the whole test: the pusher process that outlives `keys init`.
        runner = PusherThread(WalArchiver(store, "pg1", ArchiveSettings()), spool, pg_wal)
        archive_through_spool(spool, os.path.join(pg_wal, first), 30, runner.start)
        mark_done(pg_wal, first)
        init_keys(store, "pg1", None, (generate_identity().recipient(),))
        (status / f"{second}.later").rename(status / f"{second}.ready")
        archive_through_spool(spool, os.path.join(pg_wal, second), 30, runner.start)
        mark_done(pg_wal, second)
        stored = archived_names(store, "pg1")
        assert not store.get_bytes(stored[first]).startswith(AGE_HEADER)
        assert store.get_bytes(stored[second]).startswith(AGE_HEADER)

        store.delete_many([keyfile_key("pg1")])
        (status / f"{third}.later").rename(status / f"{third}.ready")
        with pytest.raises(PusherFailed, match="is gone: WAL of an encrypted server") as caught:
            archive_through_spool(spool, os.path.join(pg_wal, third), 30, runner.start)
        runner.join()
        assert caught.value.exit_code == 1
        assert third not in archived_names(store, "pg1")
