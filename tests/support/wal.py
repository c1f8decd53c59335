"""WAL test material: real segments written by PostgreSQL, and helpers around the archive."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.catalog.layout import ServerLayout
from core.codecs import codec_for_suffix
from core.storage import ObjectStore
from tests.support.postgres import Cluster, as_postgres, make_cluster, world_dir

SEGMENT = 16 * 1024 * 1024
HISTORY_2 = b"1\t0/5000EC0\tno recovery target specified\n"


def synthetic_segment(
    name: str, sysid: int = 7710584389701979633, magic: int = 0xD110, size: int = SEGMENT
) -> bytes:
    """A segment-sized buffer with a valid long page header for `name` (no records)."""
    tli = int(name[:8], 16)
    segno = int(name[8:16], 16) * (0x100000000 // size) + int(name[16:24], 16)
    header = struct.pack("<HHIQIIQII", magic, 0x0002, tli, segno * size, 0, 0, sysid, size, 8192)
    return header + bytes(size - len(header))


@dataclass
class WalSample:
    """Files PostgreSQL archived with a plain `cp`: segments and a .backup label."""

    directory: str
    segments: list[str]
    backup_label: str
    system_identifier: int

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def read(self, name: str) -> bytes:
        return Path(self.path(name)).read_bytes()


def switch_segments(cluster: Cluster, count: int, rows: int = 20000) -> list[str]:
    """Write some rows and switch WAL `count` times; returns the segments filled."""
    names = []
    cluster.sql("create table if not exists filler(i int, t text)")
    for _ in range(count):
        cluster.sql(f"insert into filler select g, md5(g::text) from generate_series(1,{rows}) g")
        names.append(cluster.one("select pg_walfile_name(pg_current_wal_lsn())"))
        cluster.sql("select pg_switch_wal()")
    return names


def wait_for(predicate: object, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def wal_sample() -> Iterator[WalSample]:
    """Real segments of one cluster, copied out by archive_command = cp."""
    directory = world_dir("pgvault-walsample-")
    cluster = make_cluster(archive_command=f"cp %p {directory}/%f")
    try:
        session = cluster.connect()
        with session.cursor() as cur:
            cur.execute("select pg_backup_start('sample', true)")
            segments = switch_segments(cluster, 3)
            cur.execute("select pg_backup_stop()")
        session.close()
        cluster.sql("select pg_switch_wal()")
        sysid = int(cluster.one("select system_identifier from pg_control_system()"))
        wait_for(
            lambda: (
                any(n.endswith(".backup") for n in os.listdir(directory))
                and all(os.path.exists(os.path.join(directory, s)) for s in segments)
            ),
            what="the sample WAL to be archived",
        )
    finally:
        cluster.drop()
    label = next(n for n in sorted(os.listdir(directory)) if n.endswith(".backup"))
    as_postgres(["chmod", "-R", "a+r", directory])
    yield WalSample(directory, segments, label, sysid)
    shutil.rmtree(directory, ignore_errors=True)


def archived_names(store: ObjectStore, server: str) -> dict[str, str]:
    """WAL name -> key of everything under <server>/wals/ (compression suffix stripped)."""
    layout = ServerLayout(server)
    found = {}
    for info in store.list_objects(layout.wals_prefix):
        parsed = layout.parse_wal(info.key)
        if parsed:
            found[parsed[0]] = info.key
    return found


def archived_bytes(store: ObjectStore, key: str) -> bytes:
    """The uncompressed content of an archived WAL object."""
    _, codec = codec_for_suffix(key)
    data = store.get_bytes(key)
    return codec.decompress(data) if codec else data


def kill_pid_file(path: str) -> int | None:
    """SIGKILL the process whose id a pid/lock file holds (a process this test started)."""
    try:
        pid = int(Path(path).read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return pid


def pgvault_run(
    pgvault_bin: str,
    *args: str,
    env: dict[str, str] | None = None,
    as_pg: bool = False,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """Run `pgvault --batch ARGS...` as an operator would (as postgres when as_pg)."""
    cmd = [pgvault_bin, "--batch", *args]
    if as_pg:
        return as_postgres(cmd, env=env, check=False, timeout=timeout)
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def archive_command(
    pgvault_bin: str, url: str, *flags: str, server: str = "pg1", state_dir: str | None = None
) -> str:
    """archive_command running pgvault wal-archive (flags before the positionals)."""
    state = ["--state-dir", state_dir] if state_dir else []
    return " ".join([pgvault_bin, *state, "--batch", "wal-archive", *flags, url, server, "%p"])


def walack_launcher(pgvault_bin: str) -> str:
    """The fast entry of archive_command (tui/walack.py under `python -I -S`) of the same
    installation as pgvault_bin, as the README recommends it."""
    python = os.path.join(os.path.dirname(pgvault_bin), "python")
    where = subprocess.run(
        [python, "-c", "import tui.walack as w; print(w.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return f"{python} -I -S {where.stdout.strip()}"


def restore_command(pgvault_bin: str, url: str, *flags: str, server: str = "pg1") -> str:
    return " ".join([pgvault_bin, "--batch", "wal-restore", *flags, url, server, "%f", "%p"])


def wait_archived_count(cluster: Cluster, count: int, timeout: float = 120) -> None:
    """Wait until pg_stat_archiver counts `count` archived files (failing loudly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        archived, failed = cluster.sql("select archived_count, failed_count from pg_stat_archiver")[
            0
        ]
        if archived >= count:
            return
        time.sleep(0.1)
    raise TimeoutError(
        f"only {archived} of {count} files archived ({failed} failures); log:\n"
        f"{cluster.server_log()[-3000:]}"
    )


def pg_wal_bytes(cluster: Cluster, name: str) -> bytes:
    return Path(cluster.data, "pg_wal", name).read_bytes()


def status_files(cluster: Cluster, suffix: str) -> set[str]:
    status = Path(cluster.data, "pg_wal", "archive_status")
    return {p.name[: -len(suffix)] for p in status.iterdir() if p.name.endswith(suffix)}


def barman_tool(name: str) -> str:
    """A barman-cloud command (PGVAULT_BARMAN_BIN, else the copy ./scripts/test installs)."""
    from tests.support.emulators import REPO

    directory = os.environ.get("PGVAULT_BARMAN_BIN") or str(REPO / ".tools" / "barman" / "bin")
    path = os.path.join(directory, name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing: run ./scripts/test (it installs barman-cloud)")
    return path


def barman_args(provider: str, cli_args: list[str]) -> list[str]:
    """barman-cloud needs --cloud-provider spelled out (it defaults to aws-s3)."""
    if provider == "s3":
        return ["--cloud-provider", "aws-s3", *cli_args]
    if provider == "azure":
        return ["--cloud-provider", "azure-blob-storage"]
    return ["--cloud-provider", "google-cloud-storage"]


def stop_pushers(spool_root: str, wait: float = 0.0) -> None:
    """SIGTERM the fast-path pushers of every spool under spool_root (started by a test);
    wait: seconds to wait for them to be gone (a bench reusing the spool must not find one
    still storing ahead)."""
    from core.wal.spool import ArchiveSpool

    if not os.path.isdir(spool_root):
        return
    spools = [ArchiveSpool(os.path.join(spool_root, name)) for name in os.listdir(spool_root)]
    for spool in spools:
        pid = spool.pusher_pid()
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while any(spool.pusher_pid() for spool in spools) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture
def scratch_dirs() -> Iterator[Callable[[str], str]]:
    """Make directories the postgres user can reach; all are removed after the test."""
    made: list[str] = []

    def make(prefix: str) -> str:
        path = world_dir(prefix)
        made.append(path)
        return path

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def private_parent(scratch_dirs: Callable[[str], str]) -> str:
    """A spool's parent directory owned by this process's user (a spool refuses one another
    user owns), inside a scratch directory removed after the test."""
    parent = os.path.join(scratch_dirs("pgvault-spool-"), "mine")
    os.mkdir(parent, 0o700)
    os.chown(parent, os.geteuid(), os.getegid())
    return parent
