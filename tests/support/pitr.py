"""Point-in-time recovery material: a source archiving through pgvault, marks, clean servers.

A source cluster archives its WAL with `pgvault wal-archive` into a test destination while
pgbench writes. `commit_marks` commits a known set of rows and records where it ended (the
time, the LSN, a restore point, the last transaction ID), then commits more rows. A restored
directory is started as postgres with an empty environment (`start_clean`), so restore_command
gets no credential from the test process: only what the restore wrote for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.postgres import PG_USER, Cluster, as_postgres, make_cluster, world_dir
from tests.support.wal import archive_command

SERVER = "pg1"
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"


class CleanCluster(Cluster):
    """A cluster whose server runs with an empty environment plus `env` (no test secrets)."""

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = [f"{k}={v}" for k, v in {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", **self.env}.items()]
        return as_postgres(
            ["env", "-i", *env, f"{self.bindir}/pg_ctl", "-D", self.data, *args], check=check
        )


def start_clean(
    data: str,
    bindir: str,
    env: Mapping[str, str] | None = None,
    settings: Mapping[str, object] | None = None,
    wait: bool = True,
) -> CleanCluster:
    """Start PostgreSQL on a restored directory as it is (no chown), on a fresh port."""
    from tests.support.emulators import free_port

    base = world_dir("pgvault-pitr-server-")
    sock = os.path.join(base, "sock")
    as_postgres(["mkdir", "-p", sock])
    cluster = CleanCluster(
        base=base, data=data, sock=sock, port=free_port(), bindir=bindir, env=dict(env or {})
    )
    conf: dict[str, object] = {
        "port": cluster.port,
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": sock,
    }
    conf.update(settings or {})
    cluster.configure(**conf)
    if wait:
        cluster.start()
    return cluster


def wait_log(cluster: Cluster, text: str, timeout: float = 180) -> str:
    """Wait until the server log holds `text`; the log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = cluster.server_log()
        if text in log:
            return log
        if "FATAL" in log and "the database system is starting up" not in log:
            break
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in the server log:\n{cluster.server_log()[-5000:]}")


def wait_stopped(cluster: Cluster, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not cluster.is_running():
            return
        time.sleep(0.2)
    raise AssertionError(f"the server did not stop:\n{cluster.server_log()[-3000:]}")


@dataclass
class Marks:
    """Where the rows committed before the targets end."""

    before: list[int]
    after: list[int]
    time: str
    lsn: str
    name: str
    xid: str


@dataclass
class Source:
    cluster: Cluster
    dest: TestDestination
    pgvault_bin: str
    backups: list[str] = field(default_factory=list)

    def backup(self, *flags: str, dest: TestDestination | None = None) -> str:
        """A pgvault backup into the source's destination (or another one)."""
        dest = dest or self.dest
        result = pgvault(
            "backup",
            "--immediate-checkpoint",
            *flags,
            *self.cluster.conninfo_args(),
            *dest.cli_args,
            dest.url,
            SERVER,
            env=dest.env,
        )
        assert result.returncode == 0, result.stderr
        self.backups.append(result.stdout.strip())
        return self.backups[-1]

    def marks(self) -> list[int]:
        rows = self.cluster.sql("select id from marks order by id")
        return [r[0] for r in rows]

    def commit_marks(self) -> Marks:
        """Three transactions of rows, the targets, then three more transactions."""
        c = self.cluster
        before = list(range(1, 31))
        xid = ""
        for first in (1, 11, 21):
            conn = c.connect()
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute(
                    "insert into marks select g, 'before' from generate_series(%s, %s) g",
                    (first, first + 9),
                )
                cur.execute("select txid_current()")
                xid = str(cur.fetchone()[0])  # type: ignore[index]
            conn.commit()
            conn.close()
        time.sleep(0.3)
        target_time = c.one("select clock_timestamp()::text")
        lsn = c.one("select pg_current_wal_lsn()::text")
        c.sql("select pg_create_restore_point('before_b')")
        time.sleep(0.3)
        after = list(range(31, 61))
        for first in (31, 41, 51):
            c.sql(
                "insert into marks select g, 'after' from generate_series(%s, %s) g",
                (first, first + 9),
            )
        return Marks(before, after, target_time, lsn, "before_b", xid)

    def archive_everything(self) -> None:
        segment = self.cluster.one("select pg_walfile_name(pg_current_wal_lsn())")
        self.cluster.sql("select pg_switch_wal()")
        self.cluster.wait_archived(segment, timeout=180)


def make_source(
    dest: TestDestination, pgvault_bin: str, scale: int = 2, settings: Mapping[str, Any] = ()
) -> Source:
    """A cluster archiving through pgvault into `dest`, with pgbench tables and `marks`."""
    cluster = make_cluster(
        archive_command=archive_command(pgvault_bin, dest.url, *dest.cli_args, "--zstd"),
        env=dest.env,
        settings={"wal_keep_size": "256MB", **dict(settings)},
    )
    as_postgres(
        [f"{cluster.bindir}/pgbench", "-i", "-q", "-s", str(scale), *cluster.conninfo_args()],
        timeout=300,
    )
    cluster.sql("create table marks(id int primary key, phase text)")
    return Source(cluster, dest, pgvault_bin)


@contextmanager
def pgbench_running(cluster: Cluster, rate: int = 100) -> Iterator[subprocess.Popen[str]]:
    """pgbench writing (rate-limited, so that archiving keeps up) while the block runs."""
    cmd = [f"{cluster.bindir}/pgbench", "-n", "-c", "2", "-T", "600", "-R", str(rate)]
    cmd += [*cluster.conninfo_args()]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", PG_USER, "--", *cmd]
    proc = subprocess.Popen(
        cmd, cwd="/tmp", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(1.0)
        assert proc.poll() is None, proc.communicate()[1]
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def pgbench_transactions(cluster: Cluster) -> int:
    return int(cluster.one("select count(*) from pgbench_history"))


@dataclass
class Target:
    """A restore's recovery directory (and what else it wrote) under one base directory."""

    base: str

    @property
    def data(self) -> str:
        return os.path.join(self.base, "data")

    @property
    def wal_dir(self) -> str:
        return self.data + ".pgvault"

    def drop(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def restore(
    source_dest: TestDestination, target: Target, backup: str, *flags: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = pgvault(
        "restore",
        *flags,
        *source_dest.cli_args,
        source_dest.url,
        SERVER,
        backup,
        target.data,
        env=source_dest.env,
    )
    if check:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    return result


@contextmanager
def restored_server(
    target: Target, bindir: str, env: Mapping[str, str] | None = None
) -> Iterator[CleanCluster]:
    server = start_clean(target.data, bindir, env=env)
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(server.base, ignore_errors=True)


def new_target() -> Target:
    return Target(world_dir("pgvault-pitr-"))


def check_snapshot_recovery(
    data: str, bindir: str, backup_id: str, expected: dict[str, tuple[int, str]]
) -> str:
    """A snapshot restore's result: backup_label and recovery.signal written, the source's
    postmaster.pid gone; PostgreSQL started on it holds `expected` and the 30 rows marked
    'after'. Returns the server's log."""
    from tests.support.postgres import wait_for_recovery_end

    with open(os.path.join(data, "backup_label")) as fh:
        assert f"pgvault backup {SERVER} {backup_id}" in fh.read()
    assert os.path.exists(os.path.join(data, "recovery.signal"))
    assert not os.path.exists(os.path.join(data, "postmaster.pid"))
    restored = start_clean(data, bindir)
    try:
        wait_for_recovery_end(restored)
        assert restored.table_checksums() == expected
        assert restored.one("select count(*) from marks where phase = 'after'") == 30
        return restored.server_log()
    finally:
        restored.stop("immediate")
        shutil.rmtree(restored.base, ignore_errors=True)
