"""The job store on its own: transitions, readers for the console, bounds, many processes."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import ExitCode
from core.jobs import (
    ACTIVE_STATES,
    FINAL_STATES,
    IllegalTransition,
    JobFilter,
    JobNotFound,
    JobState,
    JobStore,
)
from core.jobs.model import TRANSITIONS, can_transition, parse_job_id
from core.jobs.store import MAX_LOG_LINES, SAMPLE_HORIZON
from core.progress import ProgressSnapshot, RateSample
from core.secrets import register_secret


def snapshot(done: int, total: int | None = 1000, rate: float = 10.0) -> ProgressSnapshot:
    now = time.time()
    return ProgressSnapshot("copy", done, total, 0, None, rate, 5.0, now, now)


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "state" / "jobs.db")


def test_final_states_have_no_way_out_and_every_active_state_can_end() -> None:
    for state in FINAL_STATES:
        assert TRANSITIONS[state] == frozenset()
    for state in ACTIVE_STATES:
        assert can_transition(state, JobState.FAILED)
    assert not can_transition(JobState.CANCEL_REQUESTED, JobState.RUNNING)
    assert not can_transition(JobState.RUNNING, JobState.PAUSED)  # only through a request
    assert can_transition(JobState.PAUSE_REQUESTED, JobState.PAUSED)


def test_job_ids_are_positive_integers() -> None:
    assert parse_job_id(" 12 ") == 12
    for bad in ("0", "-1", "abc", ""):
        with pytest.raises(Exception) as info:
            parse_job_id(bad)
        assert getattr(info.value, "exit_code", None) == ExitCode.INPUT


def test_store_is_private_and_in_wal_mode(store: JobStore) -> None:
    store.create("copy", state=JobState.RUNNING)
    for path in store.path.parent.iterdir():  # jobs.db, jobs.db-wal, jobs.db-shm
        assert path.stat().st_mode & 0o077 == 0, path
    assert len(list(store.path.parent.iterdir())) == 3
    assert store.path.parent.stat().st_mode & 0o077 == 0
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_opening_the_store_again_keeps_this_processs_writes_visible_to_others(
    store: JobStore,
) -> None:
    # Opening the store must not touch a database this process already has open (closing
    # any descriptor of it would drop SQLite's locks and leave the first connection stale).
    job = store.create("copy", state=JobState.RUNNING)
    second = JobStore(store.path)  # as a JobReporter opens its own
    code = (
        "import sys; from core.jobs import JobStore; store = JobStore(sys.argv[1]); "
        "job = int(sys.argv[2]); print(store.get(job).state.value)\n"
        "if sys.argv[3] == 'pause': store.request_pause(job)"
    )

    def other_process(action: str) -> str:
        args = [sys.executable, "-c", code, str(store.path), str(job.id), action]
        return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()

    # Another process writes and exits (the last one out would checkpoint and remove the
    # WAL if this process's locks were gone); this process writes again; all see it.
    other_process("pause")
    assert store.get(job.id).state is JobState.PAUSE_REQUESTED
    second.request_resume(job.id)
    assert other_process("read") == "running"
    assert store.get(job.id).state is JobState.RUNNING


def test_an_unusable_state_directory_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(Exception) as info:
        JobStore(blocker / "state" / "jobs.db")
    assert info.value.__class__.__name__ == "OperationFailed"
    assert str(info.value).startswith(f"cannot open the job store {blocker}/state/jobs.db: ")


def test_operator_verbs_follow_the_rules(store: JobStore) -> None:
    job = store.create("copy", state=JobState.RUNNING, server="a")
    paused, changed = store.request_pause(job.id)
    assert changed and paused.state is JobState.PAUSE_REQUESTED
    again, changed = store.request_pause(job.id)
    assert not changed and again.state is JobState.PAUSE_REQUESTED
    resumed, changed = store.request_resume(job.id)
    assert changed and resumed.state is JobState.RUNNING
    _, changed = store.request_resume(job.id)
    assert not changed
    cancelling, _ = store.request_cancel(job.id)
    assert cancelling.state is JobState.CANCEL_REQUESTED
    with pytest.raises(IllegalTransition, match=r"cannot pause job .*cancel-requested"):
        store.request_pause(job.id)
    done = store.transition(job.id, JobState.CANCELLED, error="cancelled by the operator")
    assert done.finished is not None and done.error == "cancelled by the operator"
    for verb in (store.request_pause, store.request_resume, store.request_cancel):
        with pytest.raises(IllegalTransition) as info:
            verb(job.id)
        assert info.value.exit_code == ExitCode.FAILED
        assert "\n" not in str(info.value)
    with pytest.raises(JobNotFound) as missing:
        store.get(job.id + 100)
    assert missing.value.exit_code == ExitCode.INPUT
    log = [line.message for line in store.log_tail(job.id)]
    assert log == ["pause requested", "resume requested", "cancel requested"]


def test_flush_acknowledges_requests_in_the_same_transaction(store: JobStore) -> None:
    job = store.create("copy", state=JobState.RUNNING)
    store.request_pause(job.id)
    seen: list[JobState] = []

    def decide(state: JobState) -> JobState | None:
        seen.append(state)
        return JobState.PAUSED if state is JobState.PAUSE_REQUESTED else None

    state = store.flush(job.id, snapshot(100), [], [], decide)
    assert seen == [JobState.PAUSE_REQUESTED] and state is JobState.PAUSED
    after = store.get(job.id)
    assert after.state is JobState.PAUSED and after.bytes_done == 100
    assert after.rate == 0 and after.eta is None  # paused: nothing moves

    def illegal(state: JobState) -> JobState | None:
        return JobState.PENDING

    with pytest.raises(IllegalTransition):
        store.flush(job.id, snapshot(200), [], [], illegal)
    assert store.get(job.id).bytes_done == 100  # the failed flush wrote nothing


def test_changed_since_returns_only_what_changed(store: JobStore) -> None:
    a = store.create("copy", state=JobState.RUNNING, server="a")
    b = store.create("copy", state=JobState.RUNNING, server="b")
    first = store.changed_since(0)
    assert {j.id for j in first.jobs} == {a.id, b.id}
    assert store.changed_since(first.rev).jobs == []
    store.flush(b.id, snapshot(10), [], [])
    second = store.changed_since(first.rev)
    assert [j.id for j in second.jobs] == [b.id] and second.jobs[0].bytes_done == 10
    assert second.rev > first.rev
    # Another connection (another process, for SQLite) sees the same counter.
    other = JobStore(store.path)
    assert other.changed_since(first.rev).rev == second.rev


def test_list_filters(store: JobStore) -> None:
    a = store.create("backup", state=JobState.RUNNING, server="pg-a")
    b = store.create("restore", state=JobState.RUNNING, server="pg-b")
    c = store.create("backup", state=JobState.RUNNING, server="pg-b")
    store.transition(c.id, JobState.SUCCEEDED)

    def ids(**kwargs: object) -> list[int]:
        return [j.id for j in store.list_jobs(JobFilter(**kwargs))]  # type: ignore[arg-type]

    assert ids() == [c.id, b.id, a.id]
    assert ids(kinds=("backup",)) == [c.id, a.id]
    assert ids(servers=("pg-b",)) == [c.id, b.id]
    assert ids(states=(JobState.SUCCEEDED,)) == [c.id]
    assert ids(kinds=("backup",), servers=("pg-b",), states=(JobState.RUNNING,)) == []
    assert ids(since=time.time() + 60) == []
    assert ids(limit=1) == [c.id]


def test_log_and_samples_are_bounded_and_read_incrementally(store: JobStore) -> None:
    job = store.create("copy", state=JobState.RUNNING)
    base = time.time()
    lines = [(base + i, logging.INFO, f"line {i}") for i in range(MAX_LOG_LINES + 50)]
    samples = [RateSample(base + i, float(i)) for i in range(int(SAMPLE_HORIZON) + 10)]
    store.flush(job.id, snapshot(1), samples, lines)
    tail = store.log_tail(job.id, limit=0)
    assert len(tail) == MAX_LOG_LINES and tail[-1].message == f"line {MAX_LOG_LINES + 49}"
    newest = store.log_tail(job.id, limit=2)
    assert [x.message for x in newest] == [
        f"line {MAX_LOG_LINES + 48}",
        f"line {MAX_LOG_LINES + 49}",
    ]
    store.append_log(job.id, [(time.time(), logging.WARNING, "later")])
    assert [x.message for x in store.log_tail(job.id, after_seq=newest[-1].seq)] == ["later"]
    kept = store.samples(job.id)
    assert len(kept) == int(SAMPLE_HORIZON) and kept[-1].rate == samples[-1].rate
    assert [s.rate for s in store.samples(job.id, since=samples[-3].at)] == [
        samples[-2].rate,
        samples[-1].rate,
    ]


def test_aggregate_samples_sum_jobs_per_second(store: JobStore) -> None:
    a = store.create("copy", state=JobState.RUNNING)
    b = store.create("copy", state=JobState.RUNNING)
    t = float(int(time.time()))
    store.flush(a.id, snapshot(1), [RateSample(t + 0.2, 100.0), RateSample(t + 1.2, 50.0)], [])
    store.flush(b.id, snapshot(1), [RateSample(t + 0.7, 1.0)], [])
    assert store.aggregate_samples(t - 1) == [RateSample(t, 101.0), RateSample(t + 1, 50.0)]


def test_secrets_never_reach_the_record(store: JobStore) -> None:
    register_secret("hunter2-registered")
    job = store.create(
        "copy",
        state=JobState.RUNNING,
        description="conninfo host=x password=opensesame",
        options={"dbname": "host=x password=opensesame", "key": "hunter2-registered"},
    )
    store.append_log(job.id, [(time.time(), logging.INFO, "token=abcdef123456 used")])
    store.transition(job.id, JobState.FAILED, error="AccountKey=c2VjcmV0a2V5 refused")
    store.close()
    raw = b"".join(p.read_bytes() for p in store.path.parent.iterdir() if p.is_file())
    for secret in (b"opensesame", b"hunter2-registered", b"abcdef123456", b"c2VjcmV0a2V5"):
        assert secret not in raw


def test_retention_prunes_old_finished_jobs_with_their_log(store: JobStore) -> None:
    old = store.create("copy", state=JobState.RUNNING)
    store.append_log(old.id, [(time.time(), logging.INFO, "x")])
    store.transition(old.id, JobState.SUCCEEDED)
    live = store.create("copy", state=JobState.RUNNING)
    assert store.prune(time.time() + 1) == 1
    assert [j.id for j in store.list_jobs()] == [live.id]
    assert store.log_tail(old.id) == []


def _hammer(path: str, job_id: int, rounds: int) -> None:
    store = JobStore(path)
    for i in range(rounds):
        store.flush(job_id, snapshot(i + 1), [], [(time.time(), logging.INFO, f"{os.getpid()}")])
        if i % 10 == 0:
            store.list_jobs()
            store.changed_since(0)
    store.close()


def test_many_processes_write_and_read_at_once_without_errors(store: JobStore) -> None:
    jobs = [store.create("copy", state=JobState.RUNNING) for _ in range(4)]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(str(store.path), j.id, 200)) for j in jobs]
    for proc in procs:
        proc.start()
    polls = 0
    while any(p.is_alive() for p in procs):
        store.changed_since(0)  # a console polling meanwhile
        polls += 1
        time.sleep(0.01)
    for proc in procs:
        proc.join()
        assert proc.exitcode == 0
    assert polls > 0
    for job in jobs:
        assert store.get(job.id).bytes_done == 200
        assert len(store.log_tail(job.id, limit=0)) == 200
    assert store.rev() >= 800


def test_a_worker_claims_a_pending_job_in_the_state_the_operator_left(store: JobStore) -> None:
    from core.jobs.liveness import this_process

    plain = store.create("copy")
    paused = store.create("copy")
    cancelled = store.create("copy")
    store.request_pause(paused.id)
    store.request_cancel(cancelled.id)
    me = this_process()
    assert store.claim(plain.id, me).state is JobState.RUNNING
    assert store.claim(paused.id, me).state is JobState.PAUSED
    gone = store.claim(cancelled.id, me)
    assert gone.state is JobState.CANCELLED and gone.finished is not None
    with pytest.raises(IllegalTransition, match="cannot start job"):
        store.claim(plain.id, me)
    assert store.get(plain.id).pid == os.getpid()


def test_tracker_details_are_kept_apart_from_progress() -> None:
    from core.progress import NullReporter, Tracker

    tracker = Tracker()
    tracker.detail("backup_id", "20260101T000000")
    tracker.detail("reused_bytes", 5)
    details = tracker.details()
    details["x"] = 1  # a copy
    assert tracker.details() == {"backup_id": "20260101T000000", "reused_bytes": 5}
    NullReporter().detail("ignored", 1)


def test_a_store_dropped_unclosed_keeps_no_descriptor(tmp_path: Path) -> None:
    """sqlite3's connection sits in a reference cycle (its statement cache): a JobStore
    dropped without close() kept the database, -wal and -shm open until a full garbage
    collection. Dropping the store closes its connection now; the collector is off here."""
    JobStore(tmp_path / "jobs.db").close()  # the database and its WAL files exist
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            store = JobStore(tmp_path / "jobs.db")
            assert store.list_jobs() == []
            del store
        # Only this store's files count: other tests' threads open and close their own.
        kept = len(_open_under(tmp_path))
    finally:
        gc.enable()
    assert kept == 0, f"{kept} descriptors of the job store kept after 10 stores dropped unclosed"


def _open_under(directory: Path) -> list[str]:
    """The files below `directory` this process holds open."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue  # closed since the listing
    return [t for t in targets if t.startswith(f"{directory}/")]
