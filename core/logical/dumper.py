"""pg_dump -Fd -j N into a staging directory, each file uploaded (as it grows) and removed.

pg_dump writes `toc.dat` before the data and may rewrite nothing after, but an aborted
dump leaves a valid-looking one, so `toc.dat` is uploaded only after pg_dump exited 0.
Staging holds the files being written (one table's data each, at most N at a time) plus
at most `staging_limit` bytes of finished files waiting for upload: past it, pg_dump's
process group is stopped (SIGSTOP) until uploads catch up, and while the job is paused.
A file being written is uploaded as it grows and completed once finished (core.logical.upload).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import tempfile
import threading
from collections import deque
from dataclasses import dataclass

from core.crypto import X25519Recipient
from core.errors import InputError, OperationFailed
from core.logical.attempt import mark_staging, staging_prefix
from core.logical.lock_wait import LockWatcher
from core.logical.manifest import DumpFile
from core.logical.process import ToolWatch, die_with_parent, hold, tool_conninfo
from core.logical.staging import finished_files, split_files
from core.logical.tools import Tool
from core.logical.upload import Uploads
from core.postgres.connection import ConnectionParams
from core.progress import Reporter
from core.storage import ObjectStore, PutOptions
from core.storage.objects import PLAIN

log = logging.getLogger("pgvault.logical")

TOC = "toc.dat"
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast*", "pg_temp*")
POLL = 0.2
#: pg_dump errors that are the operator's choice (exit 3): a name, a compression it lacks
_INPUT_ERRORS = ("no matching", "does not support compression")


@dataclass(frozen=True)
class DumpSpec:
    tool: Tool
    connection: ConnectionParams
    database: str
    application_name: str  # pg_dump's sessions': the lock watcher finds them by it
    patterns: tuple[str, ...]
    jobs: int
    compression: str | None
    staging_dir: str | None
    staging_limit: int
    recipient: X25519Recipient | None = None  # an encrypted server's: each file sealed as age
    options: PutOptions = PLAIN  # every file carries the backup's tags
    phase: str = "dump"  # the job's phase while pg_dump runs


def compression_flag(compression: str | None, major: int) -> str:
    """pg_dump's -Z for a method: gzip on every version, lz4 and zstd from 16."""
    if compression is None:
        return "0"
    if compression == "gzip":
        return "6"
    if compression in ("lz4", "zstd"):
        if major < 16:  # noqa: PLR2004 - the release that added them
            raise InputError(
                f"pg_dump {major} cannot write {compression}: use --gzip, or a PostgreSQL 16 "
                "or later pg_dump (--pg-bindir)"
            )
        return compression
    raise InputError(f"a logical backup cannot use {compression}: use --gzip, --lz4 or --zstd")


def _argv(spec: DumpSpec, dsn: str, out: str) -> list[str]:
    # --no-sync: the staging copy is deleted once uploaded, and the store makes the
    # stored one durable; pg_dump's closing fsync of the directory would be paid twice.
    argv = [spec.tool.path, "-Fd", "-f", out, "-j", str(spec.jobs), "--no-sync"]
    argv += ["-Z", compression_flag(spec.compression, spec.tool.major)]
    if spec.patterns:
        argv.append("--strict-names")
        for pattern in spec.patterns:
            argv += ["-t", pattern]
        # pg_dump's -t '*' also matches the catalogs (pg_catalog is always on the search
        # path), which pgvault's own list leaves out and no restore can load.
        for system in SYSTEM_SCHEMAS:
            argv += ["-T", f"{system}.*"]
    return [*argv, "-d", dsn]


def dump_and_upload(
    spec: DumpSpec, store: ObjectStore, prefix: str, reporter: Reporter
) -> tuple[DumpFile, ...]:
    """Run pg_dump and upload its archive under `prefix`; toc.dat last."""
    # Named with this process's PID: a killed backup's is removed by the next (attempt.py).
    with tempfile.TemporaryDirectory(prefix=staging_prefix(), dir=spec.staging_dir) as tmp:
        mark_staging(tmp)
        out = os.path.join(tmp, "dump")
        upload = Uploads(store, (out, prefix), reporter, (spec.recipient, spec.options, spec.jobs))
        dsn, password = tool_conninfo(spec.connection, spec.database, spec.application_name)
        locks = LockWatcher(
            "pg_dump", spec.connection, spec.database, spec.application_name, reporter
        )
        watch = ToolWatch(reporter.checkpoint, lambda: locks.look(spec.phase))
        try:
            proc = _start(spec, (dsn, password), out)
            # Read by pgvault, not written into staging: a full staging directory (the
            # likeliest reason pg_dump fails there) would lose the reason itself.
            errors = _Stderr(proc)
            try:
                _follow(proc, out, upload, watch, spec.staging_limit)
            finally:
                _end(proc)
            _check_exit(proc.returncode, errors.lines())
            locks.finished()
            upload.finish_all()
            for name in finished_files(out, proc.pid, {TOC, *upload.futures}):
                upload.submit(name)
            files = upload.results()
            reporter.checkpoint()
            return (*files, upload.one(TOC))
        finally:
            watch.stop()
            locks.close()
            upload.close()


def _start(spec: DumpSpec, conninfo: tuple[str, str | None], out: str) -> subprocess.Popen[bytes]:
    dsn, password = conninfo
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    log.info("running %s -Fd -j %d", spec.tool.path, spec.jobs)
    return subprocess.Popen(  # noqa: S603 - pg_dump with arguments we built, no shell
        _argv(spec, dsn, out),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        # Its own process group in pgvault's session: workers are stopped and killed with it,
        # and should pgvault die, the kernel sends the group SIGHUP and SIGCONT (it became
        # orphaned with stopped members), which a new session would never get.
        process_group=0,
        preexec_fn=die_with_parent,  # one prctl call, no locks taken
    )


def _follow(
    proc: subprocess.Popen[bytes], out: str, upload: Uploads, watch: ToolWatch, limit: int
) -> None:
    """Upload each file while pg_dump runs; stop pg_dump while staging is full or the job
    is paused."""
    stopped = False
    while True:
        running = proc.poll() is None
        if running:
            finished, writing = split_files(out, proc.pid, {TOC, *upload.settled()})
            for name in writing:
                if name not in upload.futures:
                    upload.follow(name)
            for name in finished:
                upload.submit(name)
        upload.raise_failed()
        if watch.error is not None:
            raise watch.error
        if not running:
            return
        # stopped while staging is full, and while the job is paused
        stopped = hold(proc.pid, stopped, upload.waiting_bytes() > limit or watch.paused)
        # Woken at once when pg_dump exits: a sleep cost up to POLL on every dump.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=POLL)


def _end(proc: subprocess.Popen[bytes]) -> None:
    """pg_dump and its workers gone (killed when still running: a failure or a cancel)."""
    if proc.poll() is None:
        for sig in (signal.SIGCONT, signal.SIGTERM):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # a worker left behind


class _Stderr:
    """pg_dump's stderr, drained by a thread (a full pipe would block pg_dump); its last
    lines kept in memory."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._last: deque[str] = deque(maxlen=20)
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None  # noqa: S101 - Popen(stderr=PIPE)
        with proc.stderr:
            for raw in proc.stderr:
                line = raw.decode("utf-8", errors="replace").strip()
                if line:
                    self._last.append(line)

    def lines(self) -> list[str]:
        """The last lines, once pg_dump's group is gone (its end closes the pipe)."""
        self._thread.join(timeout=5)
        return list(self._last)


def _check_exit(code: int, lines: list[str]) -> None:
    if code == 0:
        return
    message = "; ".join(lines[-3:]) or f"exit code {code}"
    if any(marker in line for line in lines for marker in _INPUT_ERRORS):
        raise InputError(f"pg_dump: {message}")
    raise OperationFailed(f"pg_dump failed: {message}")


__all__ = ["DumpSpec", "compression_flag", "dump_and_upload"]
