"""Point-in-time recovery end to end, on every provider.

A cluster archives with `pgvault wal-archive` while pgbench writes; it is backed up during
that load; rows are committed, the targets recorded (time, LSN, restore point, transaction),
more rows committed. `pgvault --batch restore` into a fresh directory, then PostgreSQL
started as postgres with an empty environment: it replays the archive through the
restore_command pgvault wrote, stops at the target (the server log says so, and the action
happens: paused in recovery, promoted, shut down), and exactly the rows committed before
the target are there.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator

import pytest

from tests.support.destinations import TestDestination
from tests.support.pitr import (
    Marks,
    Source,
    make_source,
    new_target,
    pgbench_running,
    pgbench_transactions,
    restore,
    restored_server,
    wait_log,
    wait_stopped,
)
from tests.support.postgres import Cluster, wait_for_recovery_end

COMPRESSION = {"file": "--zstd", "s3": "--lz4", "azure": "--gzip", "gcs": "--snappy"}


@pytest.fixture
def source_factory(pgvault_bin: str) -> Iterator[Callable[[TestDestination], Source]]:
    made: list[Source] = []

    def factory(dest: TestDestination) -> Source:
        # A recovery target left in the source's configuration (ignored by a primary) is
        # carried by the backup: the restore's own target must win over it.
        stale = {"recovery_target_name": "stale_target_of_the_source"}
        made.append(make_source(dest, pgvault_bin, settings=stale))
        return made[-1]

    yield factory
    for source in made:
        source.cluster.drop()


def _marks(server: Cluster) -> list[int]:
    return [r[0] for r in server.sql("select id from marks order by id")]


def _wait_promoted(server: Cluster, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # still starting
            if not server.one("select pg_is_in_recovery()"):
                return
        time.sleep(0.2)
    raise AssertionError(f"not promoted:\n{server.server_log()[-4000:]}")


def recover(
    source: Source,
    flags: list[str],
    expected: list[int],
    stop_message: str,
    action: str,
    backup: str = "latest",
    wal_dir: str | None = None,
) -> str:
    """Restore with `flags`, start the server, check the stop and the rows; the backup ID."""
    target = new_target()
    try:
        if wal_dir is not None:
            flags = [*flags, "--wal-restore-dir", os.path.join(target.base, wal_dir)]
        result = restore(source.dest, target, backup, *flags)
        backup_id = result.stdout.strip()
        with open(os.path.join(target.data, "postgresql.auto.conf")) as fh:
            conf = fh.read()
        assert "pgvault --batch wal-restore --abort-on-error" in conf
        assert os.path.exists(os.path.join(target.data, "recovery.signal"))
        with restored_server(target, source.cluster.bindir) as server:
            if action == "pause":
                wait_for_recovery_end(server)
                wait_log(server, stop_message)
                wait_log(server, "pausing at the end of recovery")
                assert server.one("select pg_is_in_recovery()") is True
                assert server.one("select pg_get_wal_replay_pause_state()") == "paused"
            elif action == "shutdown":
                wait_log(server, stop_message)
                wait_stopped(server)
                assert "shutdown at recovery target" in server.server_log()
                # Starting it again with another action goes on from where it stopped.
                server.configure(recovery_target_action="promote")
                server.start()
                _wait_promoted(server)
            else:
                _wait_promoted(server)
                wait_log(server, stop_message)
            log = server.server_log()
            for name, value in source.dest.env.items():  # the restore's credentials
                if "SECRET" in name or "CONNECTION_STRING" in name:
                    assert value not in conf
            assert "consistent recovery state reached" in log
            assert 'restored log file "' in log
            assert _marks(server) == expected
        return backup_id
    finally:
        target.drop()


def _prepare(source: Source, provider: str) -> tuple[str, Marks]:
    with pgbench_running(source.cluster):
        before = pgbench_transactions(source.cluster)
        backup = source.backup(COMPRESSION[provider])
        assert pgbench_transactions(source.cluster) > before, "pgbench wrote nothing meanwhile"
        marks = source.commit_marks()
    source.archive_everything()
    assert source.marks() == marks.before + marks.after
    return backup, marks


def test_pitr_on_a_local_directory_every_target(
    make_dest: Callable[..., TestDestination], source_factory: Callable[[TestDestination], Source]
) -> None:
    dest = make_dest("file")
    source = source_factory(dest)
    backup, marks = _prepare(source, "file")
    # A later backup, taken after the target: `latest` with a target time must pass it by.
    later = source.backup("--zstd")
    source.archive_everything()

    chosen = recover(
        source,
        ["--target-time", marks.time],
        marks.before,
        "recovery stopping before commit of transaction",
        "pause",
    )
    assert chosen == backup != later
    assert (
        recover(source, [], marks.before + marks.after, "archive recovery complete", "promote")
        == later
    )
    recover(
        source,
        ["--target-lsn", marks.lsn, "--target-action", "promote"],
        marks.before,
        f'recovery stopping after WAL location (LSN) "{marks.lsn}"',
        "promote",
    )
    recover(
        source,
        ["--target-name", marks.name],
        marks.before,
        f'recovery stopping at restore point "{marks.name}"',
        "pause",
        backup=backup,
        # restore_command quotes what the shell and PostgreSQL's %-expansion would change.
        wal_dir='it\'s 100% $HOME "odd"',
    )
    recover(
        source,
        ["--target-xid", marks.xid, "--target-action", "promote"],
        marks.before,
        f"recovery stopping after commit of transaction {marks.xid}",
        "promote",
        backup=backup,
    )
    recover(
        source,
        ["--target-immediate", "--target-action", "promote"],
        [],
        "recovery stopping after reaching consistency",
        "promote",
        backup=backup,
    )


@pytest.mark.parametrize(
    "provider, action",
    [("s3", "promote"), ("azure", "shutdown"), ("gcs", "pause")],
)
def test_pitr_on_each_cloud_provider(
    provider: str,
    action: str,
    make_dest: Callable[..., TestDestination],
    source_factory: Callable[[TestDestination], Source],
) -> None:
    dest = make_dest(provider)
    source = source_factory(dest)
    backup, marks = _prepare(source, provider)
    assert (
        recover(
            source,
            ["--target-time", marks.time, "--target-action", action],
            marks.before,
            "recovery stopping before commit of transaction",
            action,
            backup="auto",
        )
        == backup
    )
    if provider == "s3":
        recover(
            source,
            ["--target-name", marks.name, "-J", "2"],
            marks.before,
            f'recovery stopping at restore point "{marks.name}"',
            "pause",
        )
    elif provider == "azure":
        recover(
            source,
            ["--target-lsn", marks.lsn, "--target-exclusive"],
            marks.before,
            f'recovery stopping before WAL location (LSN) "{marks.lsn}"',
            "pause",
        )
    else:
        recover(source, [], marks.before + marks.after, "archive recovery complete", "promote")
