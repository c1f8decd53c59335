"""Throwaway PostgreSQL clusters for tests and benchmarks, run as the postgres OS user.

PostgreSQL refuses to run as root and /root is mode 700, so the data directories live
under /tmp and every server command runs through `runuser -u postgres`. Whatever
archive_command or restore_command calls must be executable by that user: see
pgvault_for_postgres().
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions

from tests.support.emulators import REPO, free_port

PG_USER = "postgres"


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries: run the README's test command to install them."""


def ensure_postgres_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", PG_USER], check=True)
        return pwd.getpwnam(PG_USER)


def as_postgres(
    cmd: Sequence[str],
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command as the postgres user (directly when not root), from /tmp."""
    full = list(cmd)
    if env:
        full = ["env", *[f"{k}={v}" for k, v in env.items()], *full]
    if os.geteuid() == 0:
        full = ["runuser", "-u", PG_USER, "--", *full]
    result = subprocess.run(
        full, cwd="/tmp", capture_output=True, text=True, timeout=timeout, input=input
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def debian_bindir(major: int | None = None) -> str:
    """The newest (or the given) Debian PostgreSQL server bin directory."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if major is not None:
        found = [p for p in found if int(p.split("/")[4]) == major]
    if not found:
        raise PostgresMissing("no PostgreSQL server binaries: apt-get install postgresql-15")
    return os.path.dirname(found[-1])


def chown_tree(path: str, user: str = PG_USER) -> None:
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
        for name in dirs + files:
            os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid, follow_symlinks=False)


def world_dir(prefix: str) -> str:
    """A fresh directory under /tmp owned by postgres (tmp_path is not reachable by it)."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    if os.geteuid() == 0:
        pw = ensure_postgres_user()
        os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0o755)
    return path


@dataclass
class Cluster:
    """A running PostgreSQL server on 127.0.0.1 and a private unix socket directory."""

    base: str
    data: str
    sock: str
    port: int
    bindir: str
    env: dict[str, str] = field(default_factory=dict)
    tablespaces: dict[str, str] = field(default_factory=dict)

    @property
    def log(self) -> str:
        return os.path.join(self.base, "server.log")

    @property
    def dsn(self) -> str:
        return f"host={self.sock} port={self.port} user=postgres dbname=postgres"

    def conninfo_args(self) -> list[str]:
        """pgvault/barman-style connection flags for this cluster."""
        return ["-h", self.sock, "-p", str(self.port), "-U", "postgres"]

    def restore_flags(self) -> list[str]:
        """The same for `restore`, whose -h is help as in barman-cloud-restore."""
        return ["--host", self.sock, "-p", str(self.port), "-U", "postgres"]

    @property
    def major(self) -> int:
        return int(Path(self.data, "PG_VERSION").read_text().strip())

    def connect(self, dbname: str = "postgres") -> psycopg2.extensions.connection:
        conn = psycopg2.connect(host=self.sock, port=self.port, user="postgres", dbname=dbname)
        conn.autocommit = True
        return conn

    def sql(
        self, query: str, params: Sequence[Any] | None = None, dbname: str = "postgres"
    ) -> list[tuple[Any, ...]]:
        # Not `with conn`: psycopg2 2.9 opens a transaction there even in autocommit mode.
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                rows: list[tuple[Any, ...]] = cur.fetchall() if cur.description else []
        finally:
            conn.close()
        return rows

    def one(self, query: str, params: Sequence[Any] | None = None, dbname: str = "postgres") -> Any:
        return self.sql(query, params, dbname)[0][0]

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return as_postgres(
            [f"{self.bindir}/pg_ctl", "-D", self.data, *args], env=self.env, check=check
        )

    def start(self, wait: bool = True) -> None:
        args = ["-l", self.log, "-t", "120", "start"]
        self.pg_ctl(*(["-w"] if wait else ["-W"]), *args)

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-m", mode, "-w", "-t", "120", "stop", check=False)

    def is_running(self) -> bool:
        return self.pg_ctl("status", check=False).returncode == 0

    def configure(self, **settings: object) -> None:
        """Append settings to postgresql.auto.conf (takes effect at the next start/reload)."""
        lines = []
        for key, value in settings.items():
            text = str(value).replace("'", "''")
            lines.append(f"{key} = '{text}'\n")
        as_postgres(
            ["tee", "-a", os.path.join(self.data, "postgresql.auto.conf")], input="".join(lines)
        )

    def server_log(self) -> str:
        try:
            return Path(self.log).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def table_checksums(self, dbname: str = "postgres") -> dict[str, tuple[int, str]]:
        """Row count and an md5 over every user table's ordered rows."""
        tables = self.sql(
            "select quote_ident(schemaname)||'.'||quote_ident(relname) from pg_stat_user_tables "
            "order by 1",
            dbname=dbname,
        )
        result = {}
        for (table,) in tables:
            count, digest = self.sql(
                f"select count(*), coalesce(md5(string_agg(t::text, '|' order by t::text)), '') "
                f"from {table} t",
                dbname=dbname,
            )[0]
            result[table] = (count, digest)
        return result

    def wait_archived(self, segment: str, timeout: float = 60) -> None:
        """Wait until pg_stat_archiver reports `segment` (or a later one) archived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self.one("select coalesce(last_archived_wal, '') from pg_stat_archiver")
            if last and last[:24] >= segment[:24]:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{segment} not archived; log:\n{self.server_log()[-3000:]}")

    def drop(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
            for location in self.tablespaces.values():
                shutil.rmtree(os.path.dirname(location), ignore_errors=True)


def make_cluster(
    bindir: str | None = None,
    archive_command: str | None = None,
    env: Mapping[str, str] | None = None,
    settings: Mapping[str, object] | None = None,
    initdb_args: Sequence[str] = (),
    start: bool = True,
) -> Cluster:
    """initdb + start a cluster; archive_command may use %p and %f as PostgreSQL does."""
    ensure_postgres_user()
    bindir = bindir or debian_bindir()
    base = world_dir("pgvault-pg-")
    data = os.path.join(base, "data")
    sock = os.path.join(base, "sock")
    as_postgres(["mkdir", "-p", sock])
    as_postgres(
        [
            f"{bindir}/initdb",
            "-D",
            data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            *initdb_args,
        ],
        env=env,
    )
    cluster = Cluster(
        base=base, data=data, sock=sock, port=free_port(), bindir=bindir, env=dict(env or {})
    )
    conf: dict[str, object] = {
        "port": cluster.port,
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": sock,
        "fsync": "off",
        "wal_level": "replica",
        "max_wal_senders": 4,
        "logging_collector": "off",
    }
    if archive_command:
        conf.update(archive_mode="on", archive_command=archive_command)
    conf.update(settings or {})
    cluster.configure(**conf)
    if start:
        cluster.start()
    return cluster


def add_tablespace(cluster: Cluster, name: str) -> str:
    """Create a tablespace in its own directory outside PGDATA; returns the location."""
    parent = world_dir(f"pgvault-ts-{name}-")
    location = os.path.join(parent, "loc")
    as_postgres(["mkdir", location])
    cluster.sql(f"create tablespace {name} location '{location}'")
    cluster.tablespaces[name] = location
    return location


def start_restored(
    data: str,
    bindir: str,
    env: Mapping[str, str] | None = None,
    settings: Mapping[str, object] | None = None,
    tablespaces: Mapping[str, str] | None = None,
    wait: bool = True,
) -> Cluster:
    """Start PostgreSQL on a restored data directory, on a fresh port, as postgres."""
    if os.geteuid() == 0:
        chown_tree(data)
        for location in (tablespaces or {}).values():
            chown_tree(location)
    os.chmod(data, 0o700)
    base = world_dir("pgvault-restored-")
    sock = os.path.join(base, "sock")
    as_postgres(["mkdir", "-p", sock])
    cluster = Cluster(
        base=base,
        data=data,
        sock=sock,
        port=free_port(),
        bindir=bindir,
        env=dict(env or {}),
        tablespaces=dict(tablespaces or {}),
    )
    conf: dict[str, object] = {
        "port": cluster.port,
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": sock,
        "archive_mode": "off",
    }
    conf.update(settings or {})
    cluster.configure(**conf)
    if wait:
        cluster.start()
    return cluster


def wait_for_recovery_end(cluster: Cluster, timeout: float = 120) -> None:
    """Wait until the server accepts connections and is out of recovery (or paused at target)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            in_recovery = cluster.one("select pg_is_in_recovery()")
            if not in_recovery:
                return
            paused = cluster.one("select pg_get_wal_replay_pause_state() <> 'not paused'")
            if paused:
                return
        except psycopg2.OperationalError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"recovery did not finish; log:\n{cluster.server_log()[-4000:]}")


# ---- a pgvault executable the postgres user can run ------------------------------------------


def _runs_as_postgres(executable: str) -> bool:
    try:
        result = as_postgres([executable, "--version"], check=False, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def pgvault_for_postgres() -> str:
    """The path of a `pgvault` that the postgres OS user can execute.

    The project venv works when the checkout is world-traversable (built from
    /usr/bin/python3 as the README says). Otherwise (a checkout under /root, mode 700) a
    copy is installed into a venv under /tmp, once per checkout and source state.
    """
    ensure_postgres_user()
    local = str(Path(sys.executable).parent / "pgvault")
    if os.path.exists(local) and _runs_as_postgres(local):
        return local
    digest = hashlib.sha1(str(REPO).encode()).hexdigest()[:10]
    venv = f"/tmp/pgvault-pgvenv-{digest}"
    # pytest-xdist workers share it: one installs it per run (the others would reinstall
    # pgvault under tests running it), the rest wait for that and take it as it is.
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    installed = Path(f"{venv}.run")
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if run and installed.exists() and installed.read_text() == run:
            return f"{venv}/bin/pgvault"
        executable = _install_for_postgres(venv)
        installed.write_text(run or "")
        return executable


def _install_for_postgres(venv: str) -> str:
    executable = f"{venv}/bin/pgvault"
    if not os.path.exists(f"{venv}/bin/python"):
        subprocess.run(["/usr/bin/python3", "-m", "venv", venv], check=True)
    subprocess.run(
        [f"{venv}/bin/pip", "install", "-q", "--no-deps", "--force-reinstall", str(REPO)],
        check=True,
        capture_output=True,
    )
    if not _runs_as_postgres(executable):
        # First time: the dependencies too (then later runs only refresh pgvault itself).
        subprocess.run(
            [f"{venv}/bin/pip", "install", "-q", f"{REPO}[test]", "pgserver"],
            check=True,
            capture_output=True,
        )
    for path in Path(venv).rglob("*"):
        if path.is_dir():
            path.chmod(path.stat().st_mode | 0o755)
    os.chmod(venv, 0o755)
    if not _runs_as_postgres(executable):
        raise RuntimeError(f"{executable} cannot be run by the postgres user")
    return executable


def pg16_bindir() -> str:
    """PostgreSQL 16 binaries from the pgserver wheel, reachable by the postgres user."""
    executable = pgvault_for_postgres()
    python = str(Path(executable).parent / "python")
    result = subprocess.run(
        [python, "-c", "import pgserver, os; print(os.path.dirname(pgserver.__file__))"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise PostgresMissing("the pgserver wheel (PostgreSQL 16 binaries) is not installed")
    bindir = os.path.join(result.stdout.strip(), "pginstall", "bin")
    if not os.path.exists(os.path.join(bindir, "initdb")):
        raise PostgresMissing(f"no initdb in {bindir}")
    return bindir
