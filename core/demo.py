"""The embedded demo: a throwaway PostgreSQL with sample data, its WAL archived by pgvault,
and a backup job, so that a newcomer sees real jobs, bandwidth and a catalog at once.

`pgvault --demo` (and scripts/console) call `start_demo`; `pgvault --batch demo stop` (or
`pgvault --demo-stop`) calls `stop_demo`. The server binaries are Debian's when installed,
else those of the `pgserver` wheel (the `demo` extra). PostgreSQL refuses to run as root:
a root operator's demo runs as the `postgres` OS user (created when missing), in a
directory that user can reach (/var/tmp/pgvault-demo), and archives WAL with the pgvault
of this installation when that user can execute it; when it cannot, the demo runs without
WAL archiving and says why. The cluster listens on a Unix socket only and keeps running
after the console quits (so do its jobs).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import importlib.util
import json
import logging
import os
import pwd
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.errors import OperationFailed
from core.paths import data_dir, default_destination
from core.postgres import server

log = logging.getLogger("pgvault.demo")

DEMO_SERVER = "demo"
DEMO_DIR_ENV = "PGVAULT_DEMO_DIR"
ROOT_DEMO_DIR = "/var/tmp/pgvault-demo"  # noqa: S108 - a fixed place the postgres user reaches
PG_USER = "postgres"
STATE_FILE = "demo.json"
#: the demo backup's upload cap: slow enough to watch, pause and cancel, fast enough to finish
DEMO_BANDWIDTH = 8 * 1024 * 1024
DEMO_COMPRESSION: str | None = None

Step = Callable[[str], None]


@dataclass(frozen=True)
class Demo:
    """Where the demo cluster lives and how to reach it."""

    base: str
    data: str
    socket_dir: str
    port: int
    bindir: str
    os_user: str
    destination: str  # a file:// URL: the default local destination, or one under `base`
    archiving: bool
    note: str = ""  # why WAL archiving is off, when it is

    @property
    def log_file(self) -> str:
        return os.path.join(os.path.dirname(self.data), "server.log")

    def connection(self) -> dict[str, str]:
        """libpq parameters (host is the socket directory): the console's form defaults."""
        return {
            "host": self.socket_dir,
            "port": str(self.port),
            "user": "postgres",
            "dbname": "postgres",
        }


@dataclass(frozen=True)
class DemoStart:
    """What start_demo did: the cluster, whether it was created now, the backup job started."""

    demo: Demo
    created: bool
    job_id: int | None
    job_note: str = ""


# ---- where things are ---------------------------------------------------------------------------


def demo_base() -> Path:
    """$PGVAULT_DEMO_DIR, else /var/tmp/pgvault-demo for root, else $XDG_DATA_HOME/pgvault/demo."""
    explicit = os.environ.get(DEMO_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.geteuid() == 0:
        return Path(ROOT_DEMO_DIR)
    return data_dir() / "demo"


def load_demo() -> Demo | None:
    """The demo recorded under demo_base(), whether or not its server runs."""
    try:
        raw = (demo_base() / STATE_FILE).read_text()
        return Demo(**json.loads(raw))
    except (OSError, ValueError, TypeError):
        return None


def is_running(demo: Demo) -> bool:
    """Whether the postmaster of the demo's data directory is alive."""
    return server.is_running(demo.data)


# ---- running things as the server's OS user -----------------------------------------------------


def _sbin(name: str) -> str:
    """An administration tool (runuser, useradd) found also when PATH lacks the sbin
    directories, as a root shell from `su` without `-` has it on Debian."""
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/sbin"):
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK):
            return path
    return name


def _os_user() -> str:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        shell = "/usr/sbin/nologin"
        _run([_sbin("useradd"), "-r", "-M", "-s", shell, PG_USER], None, "create user")
    return PG_USER


def _as_user(cmd: list[str], user: str | None) -> list[str]:
    if user is None or os.geteuid() != 0 or user == "root":
        return cmd
    return [_sbin("runuser"), "-u", user, "--", *cmd]


def _run(
    cmd: list[str], user: str | None, what: str, timeout: float = 180, check: bool = True
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(  # noqa: S603 - argv built here, no shell
            _as_user(cmd, user),
            cwd="/",
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise OperationFailed(f"demo: cannot {what}: {exc}") from None
    if check and result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise OperationFailed(f"demo: cannot {what}: {lines[-1] if lines else 'failed'}")
    return result


def _run_input(cmd: list[str], user: str | None, text: str, what: str) -> None:
    try:
        result = subprocess.run(  # noqa: S603 - argv built here, no shell
            _as_user(cmd, user), cwd="/", input=text, text=True, capture_output=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise OperationFailed(f"demo: cannot {what}: {exc}") from None
    if result.returncode != 0:
        raise OperationFailed(f"demo: cannot {what}: {result.stderr.strip()}")


def _readable_by_all(top: Path) -> None:
    """chmod -R a+rX: every user may read the tree and run what its owner may run."""
    for root, dirs, files in os.walk(top):
        for name in dirs:
            path = os.path.join(root, name)
            os.chmod(path, os.stat(path).st_mode | 0o555)  # noqa: S103 - the server user runs them
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue
            mode = os.stat(path).st_mode
            os.chmod(path, mode | 0o444 | (0o111 if mode & 0o100 else 0))


def _chown(path: str | Path, user: str) -> None:
    if os.geteuid() == 0 and user != "root":
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)


# ---- server binaries ---------------------------------------------------------------------------


def find_bindir() -> str:
    """Debian's newest PostgreSQL server binaries, else the pgserver wheel's."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if found:
        return os.path.dirname(found[-1])
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin:
        bindir = os.path.join(os.path.dirname(spec.origin), "pginstall", "bin")
        if os.path.exists(os.path.join(bindir, "initdb")):
            return bindir
    raise OperationFailed(
        "demo: no PostgreSQL server binaries: install Debian's server "
        "(apt-get install postgresql) or the demo extra (pip install 'pgvault[demo]')"
    )


def _usable_bindir(bindir: str, user: str, base: Path, step: Step) -> str:
    """The binaries, copied next to the demo when the server's user cannot run them in place."""
    if _run([f"{bindir}/postgres", "--version"], user, "run postgres", check=False).returncode == 0:
        return bindir
    copy = base / "pginstall"
    if not (copy / "bin" / "postgres").exists():
        step(f"copying the PostgreSQL binaries where the {user} user can run them")
        shutil.copytree(os.path.dirname(bindir), copy, symlinks=True, dirs_exist_ok=True)
        _readable_by_all(copy)
        os.chmod(copy, 0o755)  # noqa: S103 - the server's OS user runs these binaries
    return str(copy / "bin")


def pgvault_executable() -> str | None:
    """This installation's `pgvault` script (what archive_command runs)."""
    beside = Path(sys.executable).parent / "pgvault"
    if beside.exists():
        return str(beside)
    return shutil.which("pgvault")


# ---- start and stop ----------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(base: Path) -> Iterator[None]:
    """One demo start or stop at a time (two consoles opened at once)."""
    with open(base / "demo.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _prepare_base(user: str) -> Path:
    base = demo_base()
    try:
        base.mkdir(parents=True, exist_ok=True)
        os.chmod(base, 0o755)  # noqa: S103 - the server's OS user works under it
    except OSError as exc:
        raise OperationFailed(f"demo: cannot create {base}: {exc.strerror or exc}") from None
    return base


def _destination(base: Path, user: str) -> str:
    """The default local destination, unless the server's user could not write into it."""
    if user == pwd.getpwuid(os.geteuid()).pw_name:
        return default_destination()
    return f"file://{base / 'backups'}"


def _archive_setup(destination: str, user: str) -> tuple[bool, str, str]:
    """(archiving, archive_command, note): WAL goes through this pgvault if `user` can run it."""
    executable = pgvault_executable()
    if executable is None:
        return False, "", "WAL archiving is off: no pgvault executable found for archive_command"
    check = _run([executable, "--version"], user, "run pgvault", timeout=60, check=False)
    if check.returncode != 0:
        return (
            False,
            "",
            f"WAL archiving is off: the {user} user cannot run {executable} "
            "(install pgvault where that user can reach it, e.g. a venv outside /root)",
        )
    command = " ".join(
        shlex.quote(part)
        for part in (executable, "--batch", "wal-archive", "--zstd", destination, DEMO_SERVER)
    )
    return True, f"{command} %p", ""


def _retire_earlier_catalog(destination: str, step: Step) -> None:
    """Move an earlier demo cluster's backups and WAL to a server name of their own.

    A new cluster's first segments have the names of the earlier one's: under one server
    name, archive_command would refuse them as "different content" for ever, and the demo's
    backup would wait for its WAL without end.
    """
    root = Path(destination.removeprefix("file://"))
    earlier = root / DEMO_SERVER
    try:
        if not earlier.is_dir() or not any(earlier.iterdir()):
            return
        retired = root / f"{DEMO_SERVER}-until-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        earlier.rename(retired)
    except OSError as exc:
        raise OperationFailed(
            f"demo: cannot move the earlier demo's backups out of {earlier}: {exc.strerror or exc}"
        ) from None
    step(f"an earlier demo cluster's backups and WAL are now under server {retired.name}")


def _prepare_wal_dir(destination: str, user: str) -> None:
    """The server's user writes WAL under <destination>/demo/wals: make that directory its own."""
    root = Path(destination.removeprefix("file://"))
    wals = root / DEMO_SERVER / "wals"
    for path in (root, root / DEMO_SERVER):
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o755)  # noqa: S103 - the server's OS user archives WAL under it
    wals.mkdir(exist_ok=True)
    _chown(wals, user)
    os.chmod(wals, 0o755)  # noqa: S103 - the console lists what the server's user archives


def _settings_text(port: int, sock: str, archiving: bool, archive_command: str) -> str:
    """The demo cluster's postgresql.auto.conf lines: a Unix socket only, WAL archived."""
    settings: dict[str, object] = {
        "port": port,
        "listen_addresses": "",
        "unix_socket_directories": sock,
        "wal_level": "replica",
        "fsync": "off",
        "synchronous_commit": "off",
        "max_wal_size": "256MB",
        "shared_buffers": "64MB",
        "logging_collector": "off",
        "archive_mode": "on" if archiving else "off",
        "archive_command": archive_command,
        "archive_timeout": "60",
    }
    return "".join(f"{k} = '{str(v).replace(chr(39), chr(39) * 2)}'\n" for k, v in settings.items())


def _create(base: Path, user: str, step: Step) -> Demo:
    bindir = _usable_bindir(find_bindir(), user, base, step)
    pg = base / "pg"
    if pg.exists():
        shutil.rmtree(pg)
    pg.mkdir(mode=0o700)
    _chown(pg, user)
    data, sock = pg / "data", pg / "sock"
    _run(["mkdir", "-m", "700", str(sock)], user, "create the socket directory")
    step("creating the demo PostgreSQL cluster (initdb)")
    _run(
        [
            f"{bindir}/initdb",
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        user,
        "create the demo cluster (initdb)",
    )
    destination = _destination(base, user)
    _retire_earlier_catalog(destination, step)
    archiving, archive_command, note = _archive_setup(destination, user)
    if archiving:
        _prepare_wal_dir(destination, user)
    port = server.free_port()
    text = _settings_text(port, str(sock), archiving, archive_command)
    _run_input(
        ["tee", "-a", str(data / "postgresql.auto.conf")], user, text, "configure the demo cluster"
    )
    demo = Demo(
        base=str(base),
        data=str(data),
        socket_dir=str(sock),
        port=port,
        bindir=bindir,
        os_user=user,
        destination=destination,
        archiving=archiving,
        note=note,
    )
    (base / STATE_FILE).write_text(json.dumps(asdict(demo), indent=2) + "\n")
    return demo


def _pg_ctl(demo: Demo, what: str, check: bool) -> server.PgCtl:
    """pg_ctl on the demo's cluster, run as its OS user; `what` names it in errors."""

    def run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return _run(argv, demo.os_user, what, timeout=timeout, check=check)

    return server.PgCtl(demo.bindir, demo.data, run)


def _start_server(demo: Demo, step: Step) -> None:
    step("starting the demo PostgreSQL server")
    _pg_ctl(demo, "start the demo server", check=True).start(demo.log_file, wait=120, timeout=180)


def _connect(demo: Demo, dbname: str = "postgres"):  # type: ignore[no-untyped-def]
    import psycopg2

    conn = psycopg2.connect(
        host=demo.socket_dir, port=demo.port, user="postgres", dbname=dbname, connect_timeout=10
    )
    conn.autocommit = True
    return conn


SAMPLE: dict[str, list[str]] = {
    "shop": [
        "create table customers(id bigint primary key, name text not null, email text not null,"
        " country text not null, created_at timestamptz not null)",
        "insert into customers select g, 'customer ' || g, 'c' || g || '@example.com',"
        " (array['FR','DE','US','JP','BR','IN','ES','NL'])[1 + g % 8],"
        " now() - make_interval(mins => g) from generate_series(1, 120000) g",
        "create table products(id int primary key, name text not null, price numeric(10,2),"
        " description text)",
        "insert into products select g, 'product ' || g, (g % 500) + 0.99,"
        " repeat(md5(g::text), 8) from generate_series(1, 8000) g",
        "create table orders(id bigint primary key, customer_id bigint not null,"
        " ordered_at timestamptz not null, status text not null, total numeric(12,2))",
        "insert into orders select g, 1 + g % 120000, now() - make_interval(secs => g * 7),"
        " (array['new','paid','shipped','delivered','returned'])[1 + g % 5], (g % 9000) / 7.0"
        " from generate_series(1, 500000) g",
        "create index orders_customer on orders(customer_id)",
        "create table order_lines(order_id bigint not null, line int not null,"
        " product_id int not null, quantity int not null, price numeric(10,2),"
        " primary key (order_id, line))",
        "insert into order_lines select o, l, 1 + (o * l) % 8000, 1 + (o + l) % 5,"
        " ((o * l) % 500) + 0.99 from generate_series(1, 500000) o, generate_series(1, 3) l",
    ],
    "analytics": [
        "create table page_views(id bigint, at timestamptz, path text, referrer text,"
        " user_agent text, duration_ms int)",
        "insert into page_views select g, now() - make_interval(secs => g),"
        " '/products/' || (g % 8000), 'https://' || md5((g % 997)::text) || '.example/',"
        " 'Mozilla/5.0 (X11; Linux x86_64) demo/' || (g % 40), g % 30000"
        " from generate_series(1, 900000) g",
        "create materialized view daily_views as select date_trunc('day', at) as day,"
        " count(*) as views, avg(duration_ms) as avg_ms from page_views group by 1",
        "create unlogged table sessions_cache(id bigint, payload text)",
        "insert into sessions_cache select g, md5(g::text) from generate_series(1, 20000) g",
    ],
}


def _load_sample(demo: Demo, step: Step) -> None:
    conn = _connect(demo)
    try:
        with conn.cursor() as cur:
            for database in SAMPLE:
                cur.execute(f"create database {database}")
    finally:
        conn.close()
    total = sum(len(s) for s in SAMPLE.values())
    done = 0
    for database, statements in SAMPLE.items():
        conn = _connect(demo, database)
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    step(f"loading sample data ({done * 100 // total}%): {database}")
                    cur.execute(statement)
                    done += 1
                cur.execute("vacuum analyze")
        finally:
            conn.close()
    conn = _connect(demo)
    try:
        with conn.cursor() as cur:
            cur.execute("checkpoint")
            if demo.archiving:
                cur.execute("select pg_switch_wal()")
    finally:
        conn.close()


def start_demo(
    state_dir: str | None = None, step: Step | None = None, backup: bool = True
) -> DemoStart:
    """Create (or reuse) the demo cluster and start a backup job unless one is running."""
    say = step or (lambda message: log.info("%s", message))
    user = _os_user()
    base = _prepare_base(user)
    with _locked(base):
        demo = load_demo()
        created = False
        if demo is None or not os.path.isdir(demo.data):
            demo = _create(base, user, say)
            _start_server(demo, say)
            try:
                _load_sample(demo, say)
            except Exception as exc:
                (base / STATE_FILE).unlink(missing_ok=True)
                raise OperationFailed(f"demo: cannot load the sample data: {exc}") from None
            created = True
        elif not is_running(demo):
            _start_server(demo, say)
    job_id, job_note = (None, "")
    if backup:
        job_id, job_note = _start_backup(demo, state_dir, say)
    return DemoStart(demo, created, job_id, job_note)


def _start_backup(demo: Demo, state_dir: str | None, step: Step) -> tuple[int | None, str]:
    from core.backup.job import BACKUP
    from core.backup.request import make_backup_request
    from core.jobs import JobFilter, JobStore
    from core.jobs.model import ACTIVE_STATES
    from core.jobs.runner import spawn_detached
    from core.postgres.connection import ConnectionParams
    from core.storage import StoreConfig
    from core.urls import parse_location

    with JobStore.open(state_dir) as store:
        active = store.list_jobs(
            JobFilter(states=tuple(ACTIVE_STATES), kinds=("backup",), servers=(DEMO_SERVER,))
        )
        if active:
            return active[0].id, f"a demo backup is already running (job {active[0].id})"
        step("starting a backup job of the demo cluster")
        request = make_backup_request(
            parse_location(demo.destination),
            DEMO_SERVER,
            store_config=StoreConfig(jobs=2, max_bandwidth=DEMO_BANDWIDTH),
            connection=ConnectionParams(**demo.connection()),
            compression=DEMO_COMPRESSION,
            immediate_checkpoint=True,
            tags=(("origin", "pgvault-demo"),),
            wal_check=demo.archiving,  # without archiving the demo's WAL is nowhere
        )
        job = spawn_detached(store, BACKUP, request)
        return job.id, ""


def stop_demo(state_dir: str | None = None, remove: bool = True) -> str:
    """Cancel the demo's active jobs, stop its server and remove its data; backups stay."""
    demo = load_demo()
    if demo is None:
        return "no demo cluster"
    from core.jobs import JobFilter, JobStore
    from core.jobs.model import ACTIVE_STATES

    with contextlib.suppress(OperationFailed), JobStore.open(state_dir) as store:
        for job in store.list_jobs(JobFilter(states=tuple(ACTIVE_STATES), servers=(DEMO_SERVER,))):
            with contextlib.suppress(OperationFailed):
                store.request_cancel(job.id)
    base = Path(demo.base)
    with _locked(base):
        if is_running(demo):
            ctl = _pg_ctl(demo, "stop the demo server", check=False)
            result = ctl.stop("fast", timeout=180, wait=60)
            if result.returncode != 0 and is_running(demo):
                server.kill_postmaster(demo.data)
        if remove:
            shutil.rmtree(os.path.dirname(demo.data), ignore_errors=True)
            (base / STATE_FILE).unlink(missing_ok=True)
    kept = f"; its backups stay in {demo.destination}"
    return f"demo cluster stopped and removed{kept}" if remove else "demo cluster stopped"


__all__ = [
    "DEMO_SERVER",
    "Demo",
    "DemoStart",
    "demo_base",
    "find_bindir",
    "is_running",
    "load_demo",
    "start_demo",
    "stop_demo",
]
