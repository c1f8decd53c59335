"""Which process runs a job, whether it still lives, and marking dead jobs failed.

A job's process writes a heartbeat with every flush (twice a second). A job whose heartbeat
is older than DEAD_AFTER and whose process is gone is marked failed by whoever notices
first: any `jobs` command, the console, a new job. The pid is checked together with the
process's start time, so a pid reused by an unrelated process does not keep a dead job
alive. Jobs of another host are left alone: their process cannot be checked from here.

The operator's requests (pause, resume, cancel) reach a job only through this store, which
its process polls with every flush. A job of another host (a state directory shared with a
container or another machine) is asked only while its heartbeat shows its process flushing
to this very store; otherwise the request would be accepted and never read, so it is
refused, naming the host (`reachable`).
"""

from __future__ import annotations

import os
import socket
import time

from core.jobs.model import ACTIVE_STATES, IllegalTransition, Job, JobFilter
from core.jobs.store import JobStore, ProcessInfo

DEAD_AFTER = 5.0  # seconds without a heartbeat before a job's process is checked


def hostname() -> str:
    return socket.gethostname()


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 overall
    except (IndexError, ValueError):
        return None


def this_process() -> ProcessInfo:
    pid = os.getpid()
    return ProcessInfo(pid=pid, host=hostname(), start=process_start(pid))


def process_of(pid: int) -> ProcessInfo:
    return ProcessInfo(pid=pid, host=hostname(), start=process_start(pid))


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[:1] == [b"Z"]


def is_alive(process: ProcessInfo) -> bool | None:
    """True or False for a process of this host; None for another host's."""
    if process.host != hostname():
        return None
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    if _zombie(process.pid):
        return False
    if process.start is not None:
        current = process_start(process.pid)
        if current is not None and current != process.start:
            return False  # the pid was reused
    return True


def reap_dead(store: JobStore, grace: float = DEAD_AFTER, now: float | None = None) -> list[Job]:
    """Mark failed every active job of this host whose heartbeat stopped and process died."""
    now = time.time() if now is None else now
    reaped: list[Job] = []
    for job in store.list_jobs(JobFilter(states=tuple(ACTIVE_STATES))):
        last = job.heartbeat or job.created
        if now - last < grace:
            continue
        process = store.process_of(job.id)
        if process is not None and is_alive(process) is not False:
            continue
        if process is None and job.host not in (None, hostname()):
            continue
        where = f"pid {process.pid} on {process.host}" if process else "no process"
        ago = now - last
        dead = store.mark_dead(
            job.id,
            stale_before=now - grace,
            error=f"the job's process died ({where}); no heartbeat for {ago:.0f} s",
        )
        if dead is not None:
            reaped.append(dead)
    return reaped


def reap_if_gone(store: JobStore, job_id: int) -> None:
    """Mark one active job failed at once when its recorded process, of this host, is
    provably gone: `jobs resume` right after a kill -9 continues it instead of saying it is
    still running until the heartbeat grace runs out."""
    job = store.get(job_id)
    if job.state not in ACTIVE_STATES:
        return
    process = store.process_of(job_id)
    if process is None or is_alive(process) is not False:
        return
    now = time.time()
    ago = now - (job.heartbeat or job.created)
    store.mark_dead(
        job_id,
        stale_before=now,
        error=f"the job's process died (pid {process.pid} on {process.host}); "
        f"no heartbeat for {ago:.0f} s",
    )


def reachable(store: JobStore, job_id: int, verb: str, now: float | None = None) -> None:
    """Refuse (one line, exit 1) to pause, resume or cancel an active job of another host
    whose process has not flushed to this store within DEAD_AFTER: it would never read the
    request. A job of this host is always asked (its death is judged here, by its pid)."""
    job = store.get(job_id)
    process = store.process_of(job_id)
    host = process.host if process is not None else job.host
    if job.state not in ACTIVE_STATES or host in (None, hostname()):
        return
    now = time.time() if now is None else now
    ago = now - (job.heartbeat or job.created)
    if ago < DEAD_AFTER:
        return  # its process writes this store, so it reads the request here too
    raise IllegalTransition(
        f"cannot {verb} job {job_id}: it runs on host {host}, whose process has not written "
        f"to this job store for {ago:.0f} s and cannot be reached from {hostname()}; "
        f"{verb} it on {host}"
    )
