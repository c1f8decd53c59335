"""The job store's tables, and how a row becomes a Job and a value becomes a column.

One place for the SQLite schema and the JSON columns (`options`, `result`): the store's
queries select COLUMNS and turn each row into a Job with `row_to_job`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from core.jobs.model import Job, JobState
from core.jobs.results import ResultRecord, read_result
from core.secrets import redact

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('rev', 0);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    entry TEXT,
    state TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    server TEXT,
    destination TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    phase TEXT NOT NULL DEFAULT '',
    bytes_done INTEGER NOT NULL DEFAULT 0,
    bytes_total INTEGER,
    files_done INTEGER NOT NULL DEFAULT 0,
    files_total INTEGER,
    rate REAL NOT NULL DEFAULT 0,
    eta REAL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    heartbeat REAL,
    pid INTEGER,
    pid_start INTEGER,
    host TEXT,
    detached INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    result TEXT NOT NULL DEFAULT '{}',
    resumed_from INTEGER,
    rev INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_rev ON jobs (rev);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created);
CREATE TABLE IF NOT EXISTS job_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    at REAL NOT NULL,
    level INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_log_job ON job_log (job_id, seq);
CREATE TABLE IF NOT EXISTS job_samples (
    job_id INTEGER NOT NULL,
    at REAL NOT NULL,
    rate REAL NOT NULL,
    PRIMARY KEY (job_id, at)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS job_samples_at ON job_samples (at);
"""

COLUMNS = (
    "id, kind, state, description, server, destination, options, phase, bytes_done, "
    "bytes_total, files_done, files_total, rate, eta, created, started, finished, heartbeat, "
    "pid, host, detached, error, result, resumed_from, rev"
)

FIELDS = tuple(name.strip() for name in COLUMNS.split(","))
#: every query that reads jobs starts here; only constants are formatted into SQL
SELECT_JOBS = f"SELECT {COLUMNS} FROM jobs"  # noqa: S608 - constant column names


def row_to_job(row: Sequence[Any]) -> Job:
    values = dict(zip(FIELDS, row, strict=True))
    state = JobState(values["state"])
    stored = json.loads(values.pop("result") or "{}")
    record = read_result(values["kind"], stored, state is JobState.SUCCEEDED)
    values["state"] = state
    values["options"] = json.loads(values["options"] or "{}")
    values["detached"] = bool(values["detached"])
    return Job(**values, details=record.details, result=record.result)


def to_json(value: Mapping[str, object]) -> str:
    """A JSON column's text, secrets redacted."""
    # Secrets never reach a job record: the kinds remove them, this is the second belt.
    return redact(json.dumps(value, sort_keys=True, default=str))


def result_json(record: ResultRecord) -> str:
    """The `result` column's text."""
    return to_json(record.to_json())
