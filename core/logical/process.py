"""Run PostgreSQL's tools under a job's checkpoint: a cancel kills the whole process group."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO

import psycopg2.extensions

from core.errors import OperationFailed
from core.postgres.connection import ConnectionParams
from core.secrets import register_secret

POLL = 0.2
_PR_SET_PDEATHSIG = 1


def tool_conninfo(
    params: ConnectionParams, database: str | None, application_name: str
) -> tuple[str, str | None]:
    """A tool's -d conninfo without the password (argv is public), and the password for its
    environment. `application_name` is how a LockWatcher finds the tool's sessions."""
    parsed = psycopg2.extensions.parse_dsn(
        params.dsn(dbname=database, application_name=application_name)
    )
    password = parsed.pop("password", None)
    register_secret(password)
    return psycopg2.extensions.make_dsn(**parsed), password


def die_with_parent() -> None:
    """In the child before exec: killed when pgvault is (never left holding locks)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ToolWatch:
    """Runs a job's checkpoint on a thread while a tool runs, then `look` (a LockWatcher's):
    a cancel is seen at once (`error`), and a pause, the checkpoint blocking, is `paused`,
    so the tool's process group can be stopped until the job resumes."""

    def __init__(self, checkpoint: Callable[[], None], look: Callable[[], None]) -> None:
        self.error: BaseException | None = None
        self._since: float | None = None  # when the checkpoint under way was entered
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(checkpoint, look), daemon=True, name="pgvault-tool-watch"
        )
        self._thread.start()

    def _run(self, checkpoint: Callable[[], None], look: Callable[[], None]) -> None:
        while not self._stop.wait(POLL):
            # Only the checkpoint is timed: a slow look (a LockWatcher query) is no pause.
            self._since = time.monotonic()
            try:
                checkpoint()
            except BaseException as exc:
                self.error = exc
                return
            finally:
                self._since = None
            try:
                look()
            except BaseException as exc:
                self.error = exc
                return

    @property
    def paused(self) -> bool:
        since = self._since
        return since is not None and time.monotonic() - since > POLL

    def stop(self) -> None:
        self._stop.set()
        # Briefly: a look under way ends within its statement timeout, and closing the
        # watcher's connection under it only ends that look.
        self._thread.join(timeout=1.0)


def hold(pgid: int, held: bool, stop: bool) -> bool:
    """Stop (SIGSTOP) or continue (SIGCONT) a tool's process group when `stop` changes
    whether it is `held`; whether it is held now."""
    if stop != held:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGSTOP if stop else signal.SIGCONT)
    return stop


class _Tail:
    """Hands `on_line` each complete line a running tool has added to a file since the
    last look (nothing when there is no `on_line`)."""

    def __init__(self, fd: int, on_line: Callable[[str], None] | None) -> None:
        self.fd, self.on_line, self.offset, self.partial = fd, on_line, 0, b""

    def look(self) -> None:
        if self.on_line is None:
            return
        while data := os.pread(self.fd, 1 << 20, self.offset):
            self.offset += len(data)
            *complete, self.partial = (self.partial + data).split(b"\n")
            for line in complete:
                self.on_line(line.decode(errors="replace"))


@dataclass(frozen=True)
class Piped:
    """A tool reading what another writes (psql running pg_restore -f -'s script)."""

    source: Sequence[str]
    tool: Sequence[str]


def run_tool(
    argv: Sequence[str] | Piped,
    what: str,
    checkpoint: Callable[[], None],
    password: str | None = None,
    watch: Callable[[], None] | None = None,
    on_stderr: Callable[[str], None] | None = None,
) -> str:
    """The tool's stdout; OperationFailed with its last error lines when it fails. `watch`
    runs beside `checkpoint` while the tool runs (a LockWatcher's look); `on_stderr` hears
    each line the tool writes to stderr, as it runs. A Piped tool and its source run in one
    process group, and both must succeed."""
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    piped = argv if isinstance(argv, Piped) else Piped((), argv)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        procs = _start(piped.tool, piped.source or None, out, err, env)
        tail = _Tail(err.fileno(), on_stderr)
        tool_watch = ToolWatch(checkpoint, watch or (lambda: None))
        try:
            _wait(procs, tool_watch, tail)
        finally:
            tool_watch.stop()
            if any(p.poll() is None for p in procs):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(procs[0].pid, signal.SIGKILL)
            for p in procs:
                p.wait()
        tail.look()  # what came after the last look
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", errors="replace")
        lines = [x.strip() for x in err.read().decode(errors="replace").splitlines() if x.strip()]
    failed = next((p.returncode for p in reversed(procs) if p.returncode != 0), None)
    if failed is not None:
        detail = "; ".join(error_lines(lines)) or f"exit code {failed}"
        raise OperationFailed(f"{what} failed: {detail}")
    return stdout


def _start(
    argv: Sequence[str],
    source: Sequence[str] | None,
    out: IO[bytes],
    err: IO[bytes],
    env: dict[str, str],
) -> list[subprocess.Popen[bytes]]:
    """The tool (after its source, when it has one), each in the first one's process group
    and killed when pgvault is (one prctl call before exec, no locks taken)."""
    procs: list[subprocess.Popen[bytes]] = []
    if source is not None:
        procs.append(
            subprocess.Popen(  # noqa: S603 - a PostgreSQL tool, arguments we built
                list(source),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
                process_group=0,
                preexec_fn=die_with_parent,
            )
        )
    stdin = procs[0].stdout if procs else subprocess.DEVNULL
    procs.append(
        subprocess.Popen(  # noqa: S603 - a PostgreSQL tool, arguments we built
            list(argv),
            stdin=stdin,
            stdout=out,
            stderr=err,
            env=env,
            process_group=procs[0].pid if procs else 0,
            preexec_fn=die_with_parent,
        )
    )
    if procs[0].stdout is not None and len(procs) > 1:
        procs[0].stdout.close()  # the tool's copy is the only one: a dead tool stops the source
    return procs


def _wait(procs: list[subprocess.Popen[bytes]], tool_watch: ToolWatch, tail: _Tail) -> None:
    """Until every process has ended; a cancel (the watch's error) raises at once."""
    held = False
    for proc in procs:
        while True:
            try:
                proc.wait(timeout=POLL)
                break
            except subprocess.TimeoutExpired:
                if tool_watch.error is not None:
                    raise tool_watch.error from None
                held = hold(procs[0].pid, held, tool_watch.paused)  # a paused job's tool
                tail.look()


def error_lines(lines: list[str]) -> list[str]:
    """The cause in a tool's stderr: its first error line with the DETAIL and HINT after it,
    then the first line of the command it ran; the last lines when no error line is seen."""
    first = next((i for i, x in enumerate(lines) if "error:" in x or "ERROR:" in x), None)
    if first is None:
        return lines[-3:]
    found = [lines[first]]
    for line in lines[first + 1 :]:
        if line.startswith(("DETAIL:", "HINT:")):
            found.append(line)
        elif line.startswith("LINE ") or line == "^":  # where in the command: it follows
            continue
        elif line.startswith("Command was:"):
            found.append(line)
            break
        else:
            break
    return found
