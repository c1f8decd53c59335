"""The restore drill of `verify --restore-drill`: prove a backup restores and starts.

    run_drill(DrillRequest(...), info, reporter) -> report lines   (DrillFailed, exit 1, if not)

Restores the backup with core.restore into a fresh temporary directory (tablespaces
relocated inside it; recovery to consistency, then promote; archive_mode off so the
drill's server archives nothing into the real archive), starts PostgreSQL on it as the
data directory's owner (as root: never root; the `postgres` OS user when the files are
root's) on a free port, listening on a private unix socket only, waits until recovery has
ended, runs pg_amcheck over every database where the binaries have it, and always stops
the server and removes the directory, whatever happened.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.catalog.backup_info import BackupInfo
from core.errors import Cancelled, ExitCode, OperationFailed, PgvaultError
from core.postgres.connection import ConnectionParams, Session
from core.postgres.server import (
    PgCtl,
    ServerNotReady,
    ServerStopped,
    free_port,
    log_tail,
    run_as,
)
from core.progress import Reporter
from core.restore import RestoreRequest, make_target, run_restore
from core.restore.recovery import conf_setting, foreign_setting
from core.storage import StoreConfig
from core.urls import Location

log = logging.getLogger("pgvault.drill")

PG_USER = "postgres"
LOG_TAIL = 15
PG10 = 100000  # from PostgreSQL 10 on, a major version is one number


class DrillFailed(OperationFailed):
    """The backup did not restore, start, reach consistency or pass pg_amcheck (exit 1)."""


def major_of(version: int | None) -> int | None:
    """150018 -> 15 (PostgreSQL's server_version_num)."""
    if not version or version < PG10:
        return None  # 9.x: named by two numbers; the bin directory must be given
    return version // 10000


def find_bindir(info: BackupInfo, given: str | None) -> str:
    """PostgreSQL's bin directory for the backup's major version."""
    major = major_of(info.version)
    if given:
        _refuse_another_major(info, major, given)
        return given
    candidates = []
    if major is not None:
        candidates += [
            f"/usr/lib/postgresql/{major}/bin",
            f"/usr/pgsql-{major}/bin",
            f"/usr/local/pgsql-{major}/bin",
        ]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(os.path.dirname(os.path.realpath(on_path)))
    if major is None:
        candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for directory in candidates:
        if not os.path.isfile(os.path.join(directory, "pg_ctl")):
            continue
        if major is None or _major_of_bindir(directory) == major:
            return directory
    raise DrillFailed(
        f"no PostgreSQL {major or ''} server binaries found for the restore drill "
        f"(looked in {', '.join(candidates) or 'PATH'}): pass --pg-bindir"
    )


def _refuse_another_major(info: BackupInfo, major: int | None, bindir: str) -> None:
    """A data directory starts only under its own major: refuse before anything is written."""
    found = _major_of_bindir(bindir)
    if major is not None and found is not None and found != major:
        raise DrillFailed(
            f"backup {info.backup_id} was taken on PostgreSQL {major} ({info.version}), "
            f"and {bindir} holds PostgreSQL {found}: a PostgreSQL {found} server cannot "
            f"start on it; pass the --pg-bindir of PostgreSQL {major}"
        )


def _major_of_bindir(directory: str) -> int | None:
    try:
        out = subprocess.run(  # noqa: S603 - the bin directory's postgres, no shell
            [os.path.join(directory, "postgres"), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    words = out.split()
    version = words[-1] if words else ""
    head = version.split(".")[0]
    return int(head) if head.isdigit() else None


class _Server:
    """The drill's PostgreSQL: commands run as the data directory's owner."""

    def __init__(self, bindir: str, work: str, data: str, uid: int, gid: int) -> None:
        self.bindir = bindir
        self.work = work
        self.data = data
        self.uid = uid
        self.gid = gid
        self.sock = os.path.join(work, "sock")
        self.log = os.path.join(work, "server.log")
        self.port = free_port()
        self.started = False
        self.ctl = PgCtl(bindir, data, self.run)
        try:
            self.user = pwd.getpwuid(uid).pw_name
        except KeyError:
            self.user = PG_USER

    def run(self, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PGTZ": "UTC"}
        try:
            return run_as(args, (self.uid, self.gid), env=env, cwd=self.work, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DrillFailed(
                f"{os.path.basename(args[0])} did not finish within {timeout:.0f} s"
            ) from None
        except OSError as exc:
            raise DrillFailed(f"cannot run {args[0]}: {exc}") from None

    def configure(self) -> None:
        _drop_foreign_places(self.data)
        os.mkdir(self.sock, 0o700)
        hba = os.path.join(self.work, "pg_hba.conf")
        with open(hba, "w", encoding="utf-8") as fh:
            fh.write("local all all trust\n")
        for path in (self.sock, hba, self.work):
            os.chown(path, self.uid, self.gid)
        # Appended last, after the restore's recovery settings: these win.
        settings = {
            "port": str(self.port),
            "listen_addresses": "",
            "unix_socket_directories": self.sock,
            "hba_file": hba,
            "archive_mode": "off",
            "logging_collector": "off",
            "log_destination": "stderr",
        }
        text = "\n# pgvault restore drill\n" + "".join(
            f"{key} = '{value}'\n" for key, value in settings.items()
        )
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a", encoding="utf-8") as fh:
            fh.write(text)

    def start(self, timeout: float) -> None:
        self.started = True  # even a pg_ctl that timed out may have left a server running
        result = self.ctl.start(self.log, wait=int(timeout), timeout=timeout + 30)
        if result.returncode != 0:
            raise DrillFailed(
                f"PostgreSQL did not start on the restored backup: "
                f"{(result.stderr or result.stdout).strip()}\n{self.log_tail()}"
            )

    def stop(self) -> None:
        if not self.started:
            return
        with contextlib.suppress(PgvaultError):
            self.ctl.stop("immediate", timeout=120)

    def log_tail(self) -> str:
        return log_tail(self.log, LOG_TAIL)

    def session(self, dbname: str = "postgres") -> Session:
        last: PgvaultError | None = None
        for user in dict.fromkeys((self.user, PG_USER)):
            try:
                return Session(
                    ConnectionParams(host=self.sock, port=str(self.port), user=user),
                    application_name="pgvault-drill",
                    dbname=dbname,
                )
            except PgvaultError as exc:
                last = exc
        if last is None:  # the loop always runs at least once
            raise DrillFailed("no user to connect as")
        raise last

    def _version_once_promoted(self) -> str | None:
        try:
            with self.session() as session:
                if not session.one("select pg_is_in_recovery()"):
                    return str(session.one("show server_version"))
        except PgvaultError:
            pass
        return None

    def wait_promoted(self, timeout: float, reporter: Reporter) -> str:
        """Wait until recovery has ended; the server's version."""
        try:
            return self.ctl.wait_for(self._version_once_promoted, timeout, reporter.checkpoint)
        except ServerNotReady:
            raise DrillFailed(
                f"the restored server did not finish recovery within {timeout:.0f} s\n"
                f"{self.log_tail()}"
            ) from None
        except ServerStopped:
            raise DrillFailed(
                f"the restored server stopped during recovery\n{self.log_tail()}"
            ) from None


@dataclass(frozen=True)
class DrillRequest:
    """Where the backup is, and how to restore and start it (verify --restore-drill)."""

    location: Location
    server: str
    store_config: StoreConfig = field(default_factory=StoreConfig)
    pgvault_command: str | None = None  # restore_command's pgvault (None: this pgvault)
    pg_bindir: str | None = None  # None: found from the backup's version
    work_dir: str | None = None  # None: the system's temp directory
    amcheck: bool = True
    timeout: float = 600.0


def _drop_foreign_places(data: str) -> None:
    """Comment out what the restored postgresql.conf names of the source's host (a
    pg_ctlcluster cluster's data_directory, external_pid_file, include_dir 'conf.d'): the
    drill's server must start on its own copy, and never touch the source's places."""
    path = os.path.join(data, "postgresql.conf")
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.readlines()
    except OSError:
        return
    kept = []
    for line in lines:
        found = conf_setting(line)
        if found and foreign_setting(data, *found):
            line = f"# {line.rstrip()}  # commented out by the pgvault restore drill\n"
        kept.append(line)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(kept)


def run_drill(request: DrillRequest, info: BackupInfo, reporter: Reporter) -> list[str]:
    """Restore, start, wait for consistency, pg_amcheck, clean up; the report's lines."""
    bindir = find_bindir(info, request.pg_bindir)
    work = tempfile.mkdtemp(prefix="pgvault-drill-", dir=request.work_dir)
    os.chmod(work, 0o755)  # noqa: S103 - the server's user must reach the data directory
    lines: list[str] = []
    servers: list[_Server] = []  # the server once there is one: stopped whatever happens
    try:
        data = _restore(request, info, work, reporter, lines)
        servers.append(_Server(bindir, work, data, *_owner(data)))
        lines += _start_and_check(servers[0], request, reporter)
    except PgvaultError as exc:
        # Cancellation, an unreachable store (2) and bad input (3) keep their own codes.
        if isinstance(exc, DrillFailed | Cancelled) or exc.exit_code != ExitCode.FAILED:
            raise
        tail = f"\n{servers[0].log_tail()}" if servers else ""
        raise DrillFailed(f"restore drill failed: {exc}{tail}") from exc
    finally:
        reporter.phase("restore drill: cleaning up")
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    lines.append(f"stopped the server and removed {work}")
    return lines


def _restore(
    request: DrillRequest, info: BackupInfo, work: str, reporter: Reporter, lines: list[str]
) -> str:
    """Restore the backup under `work` (tablespaces too), to promote at consistency."""
    data = os.path.join(work, "data")
    relocated = tuple(
        (t.name, os.path.join(work, f"tablespace-{t.oid}")) for t in info.tablespaces or ()
    )
    reporter.phase("restore drill: restoring")
    started = time.monotonic()
    restored = run_restore(
        RestoreRequest(
            location=request.location,
            server=request.server,
            backup=info.backup_id,
            recovery_dir=data,
            store_config=request.store_config,
            tablespaces=relocated,
            target=make_target(immediate=True, action="promote"),
            pgvault_command=request.pgvault_command,
            wal_restore_dir=os.path.join(work, "wal"),
            archive_mode="off",
            sync=False,
        ),
        reporter,
    )
    lines.append(
        f"restored backup {info.backup_id} into {work}: {restored.files} files, "
        f"{restored.bytes_written} bytes, in {time.monotonic() - started:.1f} s"
    )
    return data


def _start_and_check(server: _Server, request: DrillRequest, reporter: Reporter) -> list[str]:
    """Start the server, wait for its promotion, list its databases, pg_amcheck them."""
    server.configure()
    reporter.phase("restore drill: starting PostgreSQL")
    started = time.monotonic()
    server.start(request.timeout)
    reporter.phase("restore drill: waiting for consistency")
    version = server.wait_promoted(request.timeout, reporter)
    lines = [
        f"PostgreSQL {version} ({server.bindir}) started as {server.user} on port "
        f"{server.port}, replayed the WAL to consistency and was promoted in "
        f"{time.monotonic() - started:.1f} s"
    ]
    with server.session() as session:
        databases = [
            str(row[0])
            for row in session.query(
                "select datname from pg_database where datallowconn order by 1"
            )
        ]
    lines.append(f"databases that accept connections: {', '.join(databases)}")
    lines.append(_amcheck(server, request, reporter))
    return lines


def _owner(data: str) -> tuple[int, int]:
    """Who runs the drill's server: the data directory's owner, never root."""
    st = os.stat(data)
    if st.st_uid != 0:
        return st.st_uid, st.st_gid
    if os.geteuid() != 0:
        raise DrillFailed(f"{data} belongs to root: PostgreSQL cannot run on it")
    try:
        user = pwd.getpwnam(PG_USER)
    except KeyError:
        raise DrillFailed(
            f"the restored files belong to root and there is no {PG_USER} OS user to run "
            "PostgreSQL as"
        ) from None
    parent = os.path.dirname(data)
    for root, dirs, files in os.walk(parent):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid, follow_symlinks=False)
    return user.pw_uid, user.pw_gid


def _amcheck(server: _Server, request: DrillRequest, reporter: Reporter) -> str:
    tool = os.path.join(server.bindir, "pg_amcheck")
    if not request.amcheck:
        return "pg_amcheck not run (--no-amcheck)"
    if not os.path.isfile(tool):
        return f"pg_amcheck not run: {server.bindir} has none (PostgreSQL 14 and later have it)"
    reporter.phase("restore drill: pg_amcheck")
    result = server.run(
        [
            tool,
            "-h",
            server.sock,
            "-p",
            str(server.port),
            "-U",
            server.user,
            "--all",
            "--install-missing",
        ],
        timeout=request.timeout,
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        shown = "\n    ".join(output.splitlines()[:20])
        raise DrillFailed(
            f"pg_amcheck found problems in the restored backup (exit {result.returncode}):"
            f"\n    {shown}"
        )
    return "pg_amcheck --all: no corruption found in tables and B-tree indexes"


__all__ = ["DrillFailed", "DrillRequest", "find_bindir", "run_drill"]
