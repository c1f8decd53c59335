"""tui/walack.py, archive_command's stdlib-only entry: the same outcome as `pgvault`, its
acknowledgement only for a stored file, and the full command for anything it does not know."""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.wal.files import FileIdentity
from core.wal.spool import ArchiveSpool
from tests.support.postgres import world_dir
from tests.support.wal import synthetic_segment
from tui.batch import wal_archive
from tui.batch.wal_fast import SWITCHES, WITH_VALUE, spool_location, understood

NAME = "000000010000000000000003"
REPO = Path(__file__).resolve().parents[2]
WALACK = [sys.executable, "-I", "-S", str(REPO / "tui" / "walack.py")]
PGVAULT = [str(Path(sys.executable).parent / "pgvault")]


@pytest.fixture
def layout() -> Iterator[tuple[str, str]]:
    base = world_dir("pgvault-walack-")
    wal_dir = os.path.join(base, "pg_wal")
    os.makedirs(os.path.join(wal_dir, "archive_status"))
    Path(wal_dir, NAME).write_bytes(synthetic_segment(NAME))
    os.mkdir(os.path.join(base, "dest"))
    yield base, os.path.join(wal_dir, NAME)
    shutil.rmtree(base, ignore_errors=True)


def _args(base: str, wal: str, *extra: str) -> list[str]:
    return ["--async", "--spool-dir", f"{base}/spool", *extra, f"file://{base}/dest", "pg1", wal]


def _run(entry: list[str], argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*entry, *argv], capture_output=True, text=True, timeout=120)


def _spool(base: str, wal: str, *extra: str) -> ArchiveSpool:
    spool = ArchiveSpool(spool_location(_args(base, wal, *extra), os.path.dirname(wal)))
    spool.prepare()
    spool.touch_heartbeat()
    return spool


def test_its_flags_are_wal_archives_flags_of_the_same_arity() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    wal_archive.add_arguments(parser)
    arity = {flag: a.nargs for a in parser._actions for flag in a.option_strings}
    assert all(arity[flag] == 0 for flag in SWITCHES)
    assert all(flag in arity and arity[flag] is None for flag in WITH_VALUE)
    # What changes the outcome without archiving is never handled by walack itself.
    assert not {"-t", "--test", "-h", "--help", "-V", "--version"} & (SWITCHES | WITH_VALUE)
    assert "--encryption-passphrase" not in WITH_VALUE  # refused by the full command


def test_it_understands_only_plain_async_calls(layout: tuple[str, str]) -> None:
    base, wal = layout
    assert understood(_args(base, wal))
    assert understood(_args(base, wal, "-J", "8", "--zstd", "-vv", "--async-timeout=5"))
    for refused in (
        _args(base, wal, "--tags", "a,b"),  # nargs='*': the full command parses it
        _args(base, wal, "--spool", "x"),  # an argparse abbreviation
        _args(base, wal, "-t"),
        _args(base, wal, "--bogus"),
        _args(base, wal, "-J8"),
        [a for a in _args(base, wal) if a != "--async"],
        [*_args(base, wal)[:-1], "extra", wal],  # a fourth positional
        _args(base, wal)[:-1],  # no %p
    ):
        assert not understood(refused), refused


def test_a_stored_file_is_acknowledged_as_pgvault_does(layout: tuple[str, str]) -> None:
    base, wal = layout
    spool = _spool(base, wal)
    identity = FileIdentity.of(os.stat(wal))
    for entry in (WALACK, PGVAULT):
        spool.write_marker(NAME, identity, f"pg1/wals/0000000100000000/{NAME}")
        result = _run(entry, ["--batch", "wal-archive", *_args(base, wal)])
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
        assert spool.read_marker(NAME) is None, "the marker is consumed"
    # --state-dir before --batch takes the same path, in both.
    for entry in (WALACK, PGVAULT):
        spool.write_marker(NAME, identity, "k")
        argv = ["--state-dir", f"{base}/st", "--batch", "wal-archive", *_args(base, wal)]
        result = _run(entry, argv)
        assert result.returncode == 0 and spool.read_marker(NAME) is None
        assert not os.path.exists(f"{base}/st"), "the acknowledgement opens no job store"


@pytest.mark.parametrize(
    "extra",
    [
        ["--bogus"],
        ["-t"],
        ["--zstd", "--gzip"],
        ["--async-timeout", "0"],
        ["--spool-dir", "relative"],
    ],
)
def test_what_it_does_not_handle_ends_as_pgvault_ends(
    layout: tuple[str, str], extra: list[str]
) -> None:
    base, wal = layout
    argv = ["--batch", "wal-archive", *_args(base, wal, *extra)]
    if extra == ["-t"]:
        argv = ["--batch", "wal-archive", *_args(base, wal)[:-1], "-t"]
    walack, pgvault = _run(WALACK, argv), _run(PGVAULT, argv)
    assert (walack.returncode, walack.stdout, walack.stderr) == (
        pgvault.returncode,
        pgvault.stdout,
        pgvault.stderr,
    )
    assert walack.returncode == (0 if extra == ["-t"] else 3), walack.stderr


def test_nothing_is_acknowledged_when_the_spool_cannot_be_written(
    layout: tuple[str, str],
) -> None:
    base, wal = layout
    blocker = os.path.join(base, "a-file")
    Path(blocker).write_text("not a directory")
    argv = ["--batch", "wal-archive", "--async", "--spool-dir", f"{blocker}/spool"]
    argv += [f"file://{base}/dest", "pg1", wal]
    walack, pgvault = _run(WALACK, argv), _run(PGVAULT, argv)
    assert walack.returncode != 0
    assert (walack.returncode, walack.stderr) == (pgvault.returncode, pgvault.stderr)
    assert not os.listdir(os.path.join(base, "dest"))


def _hold_lock(spool: ArchiveSpool) -> int:
    """Pose as a running pusher that takes no signals (pid 0): walack waits for it."""
    fd = os.open(spool.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, b"0\n")
    return fd


def test_a_killed_wait_acknowledges_nothing_and_loses_no_marker(
    layout: tuple[str, str],
) -> None:
    base, wal = layout
    spool = _spool(base, wal)
    fd = _hold_lock(spool)
    try:
        argv = ["--batch", "wal-archive", *_args(base, wal)]
        waiting = subprocess.Popen([*WALACK, *argv], stderr=subprocess.PIPE)
        time.sleep(1.0)
        assert waiting.poll() is None, "walack waits while the pusher runs"
        waiting.send_signal(signal.SIGKILL)
        assert waiting.wait(10) == -signal.SIGKILL  # PostgreSQL keeps the file
        # The pusher stores the file and writes its marker: the next call is acknowledged.
        spool.write_marker(NAME, FileIdentity.of(os.stat(wal)), "k")
        again = subprocess.Popen([*WALACK, *argv], stderr=subprocess.PIPE)
        assert again.wait(30) == 0
        assert spool.read_marker(NAME) is None
        # No answer from the pusher is never an acknowledgement: walack hands over to the
        # full command (no pusher of its own can take the lock here), which times out.
        failing = _run(WALACK, [*argv[:2], "--async-timeout", "2", *argv[2:]])
        assert failing.returncode == 1, failing.stderr
        assert "was not stored within 2s" in failing.stderr
    finally:
        os.close(fd)
