"""The job engine: every long operation is a job recorded in a store any process can read.

- model: states, legal transitions, the Job record
- results: each kind's typed result, the details a job notes while it runs, their JSON
- store: the SQLite store (writers for the engine, readers for `jobs` and the console);
  schema: its tables, and a row as a Job
- reporter: the Reporter that persists progress and obeys pause/resume/cancel
- kinds: what a job runs (a request dataclass and a function)
- runner: run a job in the foreground or detached; worker: the detached process
- liveness: heartbeats, process checks, marking dead jobs failed
"""

from core.jobs.kinds import JobInfo, JobKind, load_kind
from core.jobs.liveness import reachable, reap_dead, reap_if_gone
from core.jobs.model import (
    ACTIVE_STATES,
    FINAL_STATES,
    IllegalTransition,
    Job,
    JobFilter,
    JobNotFound,
    JobState,
    LogLine,
)
from core.jobs.reporter import JobReporter
from core.jobs.results import JobDetails, JobResult, JsonResult
from core.jobs.store import Changes, JobStore

__all__ = [
    "ACTIVE_STATES",
    "FINAL_STATES",
    "Changes",
    "IllegalTransition",
    "Job",
    "JobDetails",
    "JobFilter",
    "JobInfo",
    "JobKind",
    "JobNotFound",
    "JobReporter",
    "JobResult",
    "JobState",
    "JobStore",
    "JsonResult",
    "LogLine",
    "load_kind",
    "reachable",
    "reap_dead",
    "reap_if_gone",
]
