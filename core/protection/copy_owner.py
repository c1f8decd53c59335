"""Who is making a succeeded run's copy to the secondary destination, and whether that
process was killed before recording the copy's end.

The run record says `copyStarted` (the process making the copy: host, pid and its start
time, as the job store records a copy job's process, and a token naming this attempt)
before the copy job starts, and clears it when the copy ends, made, failed or cancelled by a
stop signal (`copyInterrupted`). A record still saying it whose process is provably gone from
this host (SIGKILL, OOM, a host rebooted) is judged by core.jobs.liveness, the job store's
rule: the next pass on this host makes the copy (runs.redo_interrupted_copies), and
`backup-instance show` shows it not made meanwhile. A copy on another host is judged there.
"""

from __future__ import annotations

from secrets import token_hex
from typing import Any

from core.jobs.liveness import is_alive, this_process
from core.jobs.store import ProcessInfo
from core.protection.model import RunRecord, RunState


def copy_owner() -> dict[str, Any]:
    """This process as the maker of a copy to the secondary (its copy job's process, as the
    job store records it), with a token naming this attempt."""
    process = this_process()
    return {
        "host": process.host,
        "pid": process.pid,
        "pidStart": process.start,
        "token": token_hex(8),
    }


def copy_killed(record: RunRecord) -> str | None:
    """Why a succeeded run's copy to the secondary, started and never recorded as ended, is
    not being made: the process making it is gone (judged as the job store judges a job's,
    core.jobs.liveness), or None: none started, still running, or on another host (its own
    agent judges it there)."""
    started = record.copy_started
    if started is None or record.state is not RunState.SUCCEEDED or record.copy_interrupted:
        return None
    pid, host, start = started.get("pid"), started.get("host"), started.get("pidStart")
    if not isinstance(pid, int) or not isinstance(host, str):
        return None
    process = ProcessInfo(pid, host, start if isinstance(start, int) else None)
    if is_alive(process) is not False:
        return None
    return f"killed: the process making the copy (pid {pid} on {host}) ended before it did"


__all__ = ["copy_killed", "copy_owner"]
