"""archive_command's fast path: the spool it picks, and the acknowledgement without imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from core.wal.files import FileIdentity
from core.wal.spool import ArchiveSpool
from tests.support.postgres import world_dir
from tests.support.wal import synthetic_segment
from tui.batch.wal_fast import quick_ack, spool_location, wal_path_index

NAME = "000000010000000000000003"


@pytest.fixture
def layout() -> Iterator[tuple[str, str]]:
    base = world_dir("pgvault-fast-")
    wal_dir = os.path.join(base, "pg_wal")
    os.makedirs(os.path.join(wal_dir, "archive_status"))
    with open(os.path.join(wal_dir, NAME), "wb") as fh:
        fh.write(synthetic_segment(NAME))
    yield base, os.path.join(wal_dir, NAME)
    shutil.rmtree(base, ignore_errors=True)


def _argv(base: str, wal: str, *extra: str) -> list[str]:
    return ["--async", "--spool-dir", f"{base}/spool", *extra, "s3://b/p", "pg1", wal]


def test_the_spool_depends_on_what_shapes_the_upload_only(layout: tuple[str, str]) -> None:
    base, wal = layout
    wal_dir = os.path.dirname(wal)
    plain = spool_location(_argv(base, wal), wal_dir)
    assert plain.startswith(f"{base}/spool/pg1.")
    assert wal_path_index(_argv(base, wal)) == 5
    other_file = os.path.join(wal_dir, "000000010000000000000004")
    for same in (
        _argv(base, other_file),
        _argv(base, wal, "-vv"),
        _argv(base, wal, "--async-timeout", "5"),
        _argv(base, wal, "--async-timeout=9", "-q"),
    ):
        assert spool_location(same, wal_dir) == plain
    for different in (_argv(base, wal, "--zstd"), _argv(base, wal, "-J", "8")):
        assert spool_location(different, wal_dir) != plain
    assert spool_location(_argv(base, wal), "/elsewhere/pg_wal") != plain


def test_only_a_marker_naming_this_very_file_acknowledges_it(layout: tuple[str, str]) -> None:
    base, wal = layout
    argv = _argv(base, wal)
    spool = ArchiveSpool(spool_location(argv, os.path.dirname(wal)))
    assert not quick_ack(argv)  # no spool yet
    spool.prepare()
    spool.touch_heartbeat()
    assert not quick_ack(argv)  # no marker
    identity = FileIdentity.of(os.stat(wal))
    stale = FileIdentity(identity.device, identity.inode, identity.size, 1, 1)
    spool.write_marker(NAME, stale, "k")
    assert not quick_ack(argv)
    spool.write_marker(NAME, identity, "k")
    assert not quick_ack([*argv[:-1], "-t", wal])  # -t never acknowledges anything
    os.chmod(spool.root, 0o777)
    assert not quick_ack(argv)  # a spool others can write to is not trusted
    os.chmod(spool.root, 0o700)
    assert quick_ack(argv)
    assert spool.read_marker(NAME) is None  # consumed
    assert not quick_ack(argv)


def test_the_acknowledgement_loads_neither_argparse_nor_storage(layout: tuple[str, str]) -> None:
    base, wal = layout
    argv = _argv(base, wal)
    spool = ArchiveSpool(spool_location(argv, os.path.dirname(wal)))
    spool.prepare()
    spool.touch_heartbeat()
    spool.write_marker(NAME, FileIdentity.of(os.stat(wal)), "pg1/wals/x")
    probe = (
        "import sys, json\nfrom tui.cli import main\n"
        f"code = main(['--batch', 'wal-archive', *{argv!r}])\n"
        "heavy = [m for m in ('argparse', 'logging', 'core.storage', 'boto3', 'core.codecs') "
        "if m in sys.modules]\n"
        "print(json.dumps([code, heavy]))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert json.loads(result.stdout) == [0, []], result.stderr


def test_a_fast_path_flag_without_async_is_refused_in_one_plain_line(
    layout: tuple[str, str],
) -> None:
    # Seen running the README's checks: "--pusher-idle only apply with --async".
    base, wal = layout
    pgvault = os.path.join(os.path.dirname(sys.executable), "pgvault")
    for flags, line in (
        (["--pusher-idle", "5"], "--pusher-idle applies only with --async"),
        (["-J", "2", "--async-timeout", "5"], "-J/--jobs, --async-timeout apply only with --async"),
    ):
        argv = [pgvault, "--batch", "wal-archive", *flags, f"file://{base}/dest", "pg1", wal]
        result = subprocess.run(argv, capture_output=True, text=True)
        assert result.returncode == 3, result.stderr
        assert result.stderr == f"pgvault wal-archive: error: {line}\n", result.stderr
