"""A restore SIGKILLed midway and run again with the same command keeps the files it had
written (checked again against pgvault.json's sizes and checksums) and fetches only the
rest, counted on the wire by a proxy in front of moto; PostgreSQL then starts on the
directory, pg_verifybackup finds it whole, and every table holds the source's data."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import subprocess
from collections.abc import Iterator

import pytest

from core.restore.rerun import MARKER
from tests.support.cli import spawn
from tests.support.destinations import make_destination
from tests.support.emulators import Emulator
from tests.support.fault_proxy import FaultProxy, Script, through_proxy
from tests.support.jobs import wait_for
from tests.support.pitr import (
    SERVER,
    Source,
    make_source,
    new_target,
    restore,
    restored_server,
    wait_log,
)
from tests.support.postgres import PG_USER, add_tablespace, wait_for_recovery_end

MiB = 1024 * 1024
IMMEDIATE = ("--target-immediate", "--target-action", "promote")
# The largest file (pgbench_accounts at scale 1, 13 MB): the most a kill (-J 1) can leave
# half-written, fetched again whole.
LARGEST_FILE = 16 * MiB


@pytest.fixture
def source(pgvault_bin: str, emulators: dict[str, Emulator]) -> Iterator[Source]:
    dest = make_destination("s3", emulators)
    made = make_source(dest, pgvault_bin, scale=1)
    for n in range(12):  # about 9 MB each
        made.cluster.sql(
            f"create table filler{n} as select g as id, repeat(md5(g::text), 30) as pad "
            "from generate_series(1, 9000) g"
        )
    try:
        yield made
    finally:
        made.cluster.drop()
        dest.drop()


def _on_disk(root: str) -> int:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
    return total


def test_a_killed_restore_run_again_fetches_only_what_it_had_not_written(
    source: Source, emulators: dict[str, Emulator]
) -> None:
    source.cluster.sql("vacuum freeze")
    backup = source.backup()  # plain tar parts: a rerun reads only the files it needs
    source.archive_everything()
    expected = source.cluster.table_checksums()
    with source.dest.store() as store:
        prefix = f"{SERVER}/base/{backup}/"
        total = sum(o.size for o in store.list_objects(prefix) if ".tar" in o.key)
    target = new_target()
    try:
        with FaultProxy(emulators["s3"].port, Script([])) as proxy:
            via = through_proxy(source.dest, emulators, proxy)
            args = ["restore", "-J", "1", *IMMEDIATE, *via.cli_args, via.url, SERVER, backup]
            proc = spawn(*args, target.data, env=via.env)
            wait_for(
                lambda: proc.poll() is not None or _on_disk(target.data) >= 0.5 * total,
                timeout=180,
                interval=0.02,
                what="half the backup written",
            )
            assert proc.poll() is None, proc.communicate()
            proc.kill()
            proc.wait(timeout=30)
            written = _on_disk(target.data)
            with open(os.path.join(target.data, MARKER)) as fh:
                assert json.load(fh)["owner"]["pid"] == proc.pid  # gone: its restore continues
            assert not os.path.exists(os.path.join(target.data, "global", "pg_control"))

            before = proxy.answered
            result = restore(via, target, backup, "-J", "1", "-v", *IMMEDIATE)
            fetched = proxy.answered - before
            print(
                f"\nrestore rerun: {written} of {total} archive bytes written before the kill; "
                f"the rerun fetched {fetched} bytes ({fetched / total:.0%} of the archives)"
            )
            assert "interrupted restore of this backup" in result.stderr, result.stderr
            # At most one file was half-written at the kill (-J 1): it is fetched again.
            assert fetched <= total - written + LARGEST_FILE + 0.03 * total, result.stderr
            assert not os.path.exists(os.path.join(target.data, MARKER))
            verified = subprocess.run(
                [f"{source.cluster.bindir}/pg_verifybackup", "-n", target.data],
                capture_output=True,
                text=True,
            )
            assert verified.returncode == 0, verified.stderr + verified.stdout
            with restored_server(target, source.cluster.bindir, env=via.env) as server:
                wait_for_recovery_end(server)
                wait_log(server, "recovery stopping after reaching consistency")
                assert server.table_checksums() == expected
    finally:
        target.drop()


def _files(root: str) -> dict[str, int]:
    """Every file under root and its size (what a refused restore must leave as it was)."""
    found = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            found[path] = os.lstat(path).st_size
    return found


def test_a_restore_into_the_directory_of_a_running_one_is_refused(source: Source) -> None:
    """The second restore found the first's marker, took it for a killed restore's and
    continued it; the first failed and its cleanup emptied the directory (found from outside).
    Now the second is refused before it touches anything, and the first finishes."""
    backup = source.backup()
    source.archive_everything()
    expected = source.cluster.table_checksums()
    dest, target = source.dest, new_target()
    marker = os.path.join(target.data, MARKER)
    args = ["restore", "-J", "1", *IMMEDIATE, *dest.cli_args, dest.url, SERVER, backup]
    try:
        first = spawn(*args, target.data, env=dest.env)
        wait_for(
            lambda: first.poll() is not None or os.path.exists(marker),
            timeout=180,
            interval=0.01,
            what="the first restore's marker",
        )
        os.kill(first.pid, signal.SIGSTOP)  # held midway: alive, its marker locked
        try:
            assert first.poll() is None, first.communicate()
            written = _files(target.data)
            refusals = [
                restore(dest, target, backup, *flags, *IMMEDIATE, check=False)
                for flags in ((), ("--delta",))
            ]
            assert _files(target.data) == written
        finally:
            os.kill(first.pid, signal.SIGCONT)
        _, err = first.communicate(timeout=600)
        assert first.returncode == 0, err
        running = f"pgvault process {first.pid} on {socket.gethostname()} is running"
        for refused in refusals:
            assert refused.returncode == 1, refused.stderr
            assert refused.stderr.count("\n") == 1, refused.stderr
            assert f"another restore is writing into {target.data} ({running})" in refused.stderr
        assert not os.path.exists(marker)
        with restored_server(target, source.cluster.bindir, env=dest.env) as server:
            wait_for_recovery_end(server)
            assert server.table_checksums() == expected
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        target.drop()


@pytest.fixture
def small(pgvault_bin: str) -> Iterator[Source]:
    dest = make_destination("file", {})
    made = make_source(dest, pgvault_bin, scale=1)
    try:
        yield made
    finally:
        made.cluster.drop()
        dest.drop()


def test_an_older_pgvaults_marker_is_continued_unless_it_is_locked(small: Source) -> None:
    """A marker without owner (pgvault before owners) is still taken for a killed restore's;
    one whose lock another process holds is refused (exit 1) and left as it is."""
    backup = small.backup()
    small.archive_everything()
    expected = small.cluster.table_checksums()
    systemid = small.cluster.one("select system_identifier from pg_control_system()")
    target = new_target()
    postgres = pwd.getpwnam(PG_USER)
    os.makedirs(target.data, 0o700)
    os.chown(target.data, postgres.pw_uid, postgres.pw_gid)
    marker = os.path.join(target.data, MARKER)
    with open(marker, "w") as fh:
        json.dump({"backup_id": backup, "systemid": str(systemid)}, fh)
    try:
        holder = subprocess.Popen(
            ["flock", marker, "-c", "echo held; exec sleep 600"],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # flock and the sleep it runs (which inherits the lock)
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            refused = restore(small.dest, target, backup, *IMMEDIATE, check=False)
        finally:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait()
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert f"another restore is writing into {target.data} (its marker is locked)" in (
            refused.stderr
        )
        assert os.listdir(target.data) == [MARKER]
        result = restore(small.dest, target, backup, "-v", *IMMEDIATE)
        assert "interrupted restore of this backup" in result.stderr, result.stderr
        with restored_server(target, small.cluster.bindir) as server:
            wait_for_recovery_end(server)
            assert server.table_checksums() == expected
    finally:
        target.drop()


@pytest.fixture
def with_tablespace(pgvault_bin: str, emulators: dict[str, Emulator]) -> Iterator[Source]:
    """A source whose tablespace's part is the largest (so the first one a restore fetches)."""
    dest = make_destination("s3", emulators)
    made = make_source(dest, pgvault_bin, scale=1)
    add_tablespace(made.cluster, "big")
    made.cluster.sql(
        "create table spaced tablespace big as select g as id, repeat(md5(g::text), 30) as pad "
        "from generate_series(1, 60000) g"
    )
    try:
        yield made
    finally:
        made.cluster.drop()
        dest.drop()


def test_a_killed_restore_that_had_filled_a_relocated_tablespace_is_continued(
    with_tablespace: Source, emulators: dict[str, Emulator]
) -> None:
    source = with_tablespace
    backup = source.backup()
    source.archive_everything()
    expected = source.cluster.table_checksums()
    target = new_target()
    location = os.path.join(target.base, "big")
    try:
        with FaultProxy(emulators["s3"].port, Script([]), rate=4 * MiB) as proxy:
            via = through_proxy(source.dest, emulators, proxy)
            args = [
                "restore",
                "-J",
                "1",
                "--tablespace",
                f"big:{location}",
                *IMMEDIATE,
                *via.cli_args,
                via.url,
                SERVER,
                backup,
            ]
            proc = spawn(*args, target.data, env=via.env)
            wait_for(
                lambda: proc.poll() is not None or _on_disk(location) >= 4 * MiB,
                timeout=180,
                interval=0.02,
                what="the tablespace's files to be written",
            )
            assert proc.poll() is None, proc.communicate()
            proc.kill()
            proc.wait(timeout=30)
            # Its pg_tblspc links are laid out after the last file: the marker names the
            # location instead. (Before, the rerun refused the location as another's.)
            assert not os.path.exists(os.path.join(target.data, "pg_tblspc"))
            result = restore(
                via, target, backup, "-v", "--tablespace", f"big:{location}", *IMMEDIATE
            )
            assert "interrupted restore of this backup" in result.stderr, result.stderr
            with restored_server(target, source.cluster.bindir, env=via.env) as server:
                wait_for_recovery_end(server)
                wait_log(server, "recovery stopping after reaching consistency")
                assert server.table_checksums() == expected
    finally:
        target.drop()
