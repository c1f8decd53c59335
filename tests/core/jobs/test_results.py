"""Typed job results: records written by the previous version load typed and print the same."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from core.jobs import Job, JobState, JobStore, JsonResult
from core.jobs.kinds import BUILTIN
from core.jobs.results import (
    RESULT_TYPES,
    BackupJobResult,
    DeleteJobResult,
    JobDetails,
    KeysJobResult,
    RestoreJobResult,
    ResultRecord,
    VerifyJobResult,
    WalPushJobResult,
)
from tui.job_results import delete_lines, result_fields, result_json, verify_lines

BACKUP = {
    "backup_id": "20260101T000000",
    "status": "DONE",
    "files": 1234,
    "bytes_read": 50_000_000,
    "bytes_stored": 9_000_000,
    "begin_wal": "000000010000000000000002",
    "end_wal": "000000010000000000000003",
    "summary": "backup 20260101T000000: 1234 files, 47.7 MiB read",
    "reused_bytes": 10,  # details a resumed backup recorded while it ran
    "reused_stored_bytes": 4,
}
RESTORE = {
    "backup_id": "20260101T000000",
    "recovery_dir": "/srv/restore",
    "tablespaces": [["ts1", "/srv/ts1"]],
    "files": 12,
    "bytes_written": 1000,
    "bytes_downloaded": 500,
    "target": "the end of the WAL archive",
    "credentials_file": None,
    "wal_restore_dir": "/srv/restore/pgvault-wal",
    "warnings": ["a warning"],
    "summary": "restored backup 20260101T000000 into /srv/restore",
    "report": ["restored backup 20260101T000000 into /srv/restore", "restore_command = x"],
}
VERIFY = {
    "backup_id": "20260101T000000",
    "server": "pg1",
    "written_by": "pgvault",
    "objects": 4,
    "bytes_read": 999,
    "checked": ["every checksum"],
    "not_checked": ["WAL records are not replayed here"],
    "drill": ["PostgreSQL started"],
    "summary": "backup 20260101T000000: verified, 4 objects, 999 bytes read",
}
DELETE = {
    "server": "pg1",
    "dry_run": True,
    "policy": "REDUNDANCY 1",
    "now": "2026-01-02T00:00:00+00:00",
    "statuses": [["20260101T000000", "OBSOLETE"], ["20260102T000000", "VALID"]],
    "deleted": [
        {
            "backup_id": "20260101T000000",
            "status": "DONE",
            "why": "OBSOLETE under REDUNDANCY 1",
            "objects": [
                "pg1/base/20260101T000000/data.tar",
                "pg1/base/20260101T000000/backup.info",
            ],
            "size": 2048,
            "wal_count": 3,
            "wal_runs": [["000000010000000000000001", "000000010000000000000003", 3]],
            "wal_reason": "no backup needs them",
        }
    ],
    "skipped": [],
}
KEYS = {
    "server": "pg1",
    "action": "rewrap",
    "generation": 2,
    "recipients_added": ["age1new"],
    "recipients_removed": ["age1old"],
    "passphrase_wrap": "kept",
    "lines": ["generation 1 ...", "unlocked by: passphrase; recipients age1new"],
    "summary": "keys rewrap of server pg1: data key generation 2, passphrase kept",
}
WAL_PUSH = {"stored": 3, "already_archived": 1, "failed": 0, "gone": 0}


def _old_record(store: JobStore, kind: str, state: JobState, result: dict[str, Any]) -> Job:
    """A job row as the previous version wrote it (json.dumps, sorted keys), read back."""
    job = store.create(kind)
    with sqlite3.connect(store.path) as conn:
        conn.execute(
            "UPDATE jobs SET state = ?, result = ? WHERE id = ?",
            (state.value, json.dumps(result, sort_keys=True, default=str), job.id),
        )
    return store.get(job.id)


def _as_printed_before(result: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """What `jobs show` printed from the loaded dict: its JSON and its result.* lines."""
    loaded = json.loads(json.dumps(result, sort_keys=True))
    return json.dumps(loaded, indent=2), [(f"result.{k}", str(v)) for k, v in loaded.items()]


def test_every_built_in_kind_has_a_typed_result() -> None:
    assert set(RESULT_TYPES) == set(BUILTIN)


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "jobs.db")


@pytest.mark.parametrize(
    ("kind", "stored", "result_type"),
    [
        ("backup", BACKUP, BackupJobResult),
        ("restore", RESTORE, RestoreJobResult),
        ("verify", VERIFY, VerifyJobResult),
        ("delete", DELETE, DeleteJobResult),
        ("wal-push", WAL_PUSH, WalPushJobResult),
        ("keys", KEYS, KeysJobResult),
    ],
)
def test_an_old_succeeded_record_loads_typed_and_prints_byte_for_byte(
    store: JobStore, kind: str, stored: dict[str, Any], result_type: type[Any]
) -> None:
    job = _old_record(store, kind, JobState.SUCCEEDED, stored)
    assert isinstance(job.result, result_type)
    assert job.result_as(result_type) is job.result
    text, fields = _as_printed_before(stored)
    assert json.dumps(result_json(job), indent=2) == text
    assert result_fields(job) == fields


def test_the_typed_results_read_their_fields(store: JobStore) -> None:
    backup = _old_record(store, "backup", JobState.SUCCEEDED, BACKUP)
    assert backup.result_as(BackupJobResult).files == 1234
    assert backup.details == JobDetails("20260101T000000", 10, 4)
    restore = _old_record(store, "restore", JobState.SUCCEEDED, RESTORE).result
    assert isinstance(restore, RestoreJobResult)
    assert restore.tablespaces == (("ts1", "/srv/ts1"),) and restore.credentials_file is None
    delete = _old_record(store, "delete", JobState.SUCCEEDED, DELETE).result_as(DeleteJobResult)
    assert delete.deleted[0].wal_runs == (
        ("000000010000000000000001", "000000010000000000000003", 3),
    )
    assert delete_lines(delete) == [
        "retention policy REDUNDANCY 1 evaluated at 2026-01-02T00:00:00+00:00",
        "would delete backup 20260101T000000 (DONE, OBSOLETE under REDUNDANCY 1): 2 objects, "
        "2048 bytes",
        "  pg1/base/20260101T000000/data.tar",
        "  pg1/base/20260101T000000/backup.info",
        "  WAL: would remove 3 file(s): 000000010000000000000001..000000010000000000000003 (3) "
        "(no backup needs them)",
    ]
    verify = _old_record(store, "verify", JobState.SUCCEEDED, VERIFY).result_as(VerifyJobResult)
    assert verify_lines(verify) == [
        "verified: every checksum",
        "not checked: WAL records are not replayed here",
        "drill: PostgreSQL started",
        VERIFY["summary"],
    ]


def test_a_failed_or_running_job_has_its_details_and_no_result(store: JobStore) -> None:
    failed = _old_record(store, "backup", JobState.FAILED, {"backup_id": "20260101T000000"})
    assert failed.result is None and failed.details.backup_id == "20260101T000000"
    assert result_json(failed) == {"backup_id": "20260101T000000"}
    with pytest.raises(Exception, match="recorded no BackupJobResult"):
        failed.result_as(BackupJobResult)
    running = _old_record(store, "test-upload", JobState.RUNNING, {"key": "data/blob"})
    assert running.result is None and running.details.other == {"key": "data/blob"}
    assert result_json(running) == {"key": "data/blob"}


def test_an_unknown_kind_or_a_record_of_another_shape_reads_back_as_stored(
    store: JobStore,
) -> None:
    other = {"size": 5, "key": "o", "nested": {"b": 1, "a": [1, 2]}}
    job = _old_record(store, "test-upload", JobState.SUCCEEDED, other)
    assert job.result == JsonResult(other) and job.result == other
    odd = {"backup_id": "20260101T000000", "files": "many"}  # not what this version writes
    backup = _old_record(store, "backup", JobState.SUCCEEDED, odd)
    assert isinstance(backup.result, JsonResult) and backup.details.backup_id == odd["backup_id"]
    for read, stored in ((job, other), (backup, odd)):
        text, fields = _as_printed_before(stored)
        assert json.dumps(result_json(read), indent=2) == text
        assert result_fields(read) == fields


def test_a_result_written_by_this_version_round_trips(store: JobStore) -> None:
    result = WalPushJobResult(stored=2, already_archived=0, failed=0, gone=1)
    job = store.create("wal-push", state=JobState.RUNNING)
    done = store.transition(
        job.id, JobState.SUCCEEDED, result=ResultRecord(JobDetails(backup_id=None), result)
    )
    assert done.result == result and done.details == JobDetails()


def test_a_wal_repair_result_round_trips_with_its_lost_ranges(store: JobStore) -> None:
    from core.jobs.results import WalRepairJobResult

    result = WalRepairJobResult(
        server="pg1",
        gaps_found=2,
        missing=3,
        repaired=("000000010000000000000005",),
        lost=("lost: timeline 1 WAL 0/7000000 to 0/9000000 (...)",),
        source="/var/lib/postgresql/data/pg_wal",
        summary="1 of 3 missing segment(s) archived again",
    )
    job = store.create("wal-repair", state=JobState.RUNNING)
    done = store.transition(job.id, JobState.SUCCEEDED, result=ResultRecord(JobDetails(), result))
    assert done.result == result
    assert store.get(job.id).result == result
