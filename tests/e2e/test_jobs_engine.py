"""The job engine across real processes: detached jobs controlled with `pgvault --batch jobs`.

The operation is a real upload through core.storage (tests/support/jobkinds.py) running in
its own detached process; every control and every read goes through the pgvault
executable in yet another process.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from core.jobs import JobState, JobStore
from core.jobs.liveness import DEAD_AFTER, this_process
from core.jobs.runner import spawn_detached
from core.jobs.worker import JOB_NICENESS
from tests.support.destinations import TestDestination
from tests.support.jobkinds import UPLOAD, UploadRequest
from tests.support.jobs import PGVAULT, REPO, bytes_on_disk, make_source, pgvault, show, wait_for
from tests.support.postgres import (
    as_postgres,
    ensure_postgres_user,
    pgvault_for_postgres,
    world_dir,
)
from tui.batch.jobs import LIST_ENDED

MiB = 1024 * 1024


def file_sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def store(state_dir: Path) -> JobStore:
    return JobStore(state_dir / "jobs.db")


def detached_upload(store: JobStore, request: UploadRequest) -> int:
    return spawn_detached(store, UPLOAD, request).id


def test_pause_stops_every_byte_within_a_second_and_resume_finishes_the_upload(
    store: JobStore, state_dir: Path, tmp_path: Path, make_dest: object
) -> None:
    dest: TestDestination = make_dest("file")  # type: ignore[operator]
    source = make_source(tmp_path / "src", 48 * MiB)
    job_id = detached_upload(
        store, UploadRequest(source, dest.url, "data/blob", max_bandwidth=6 * MiB)
    )
    wait_for(lambda: show(state_dir, job_id)["bytes_done"] > 6 * MiB, what="bytes to flow")

    pgvault(state_dir, "jobs", "pause", str(job_id), check=True)
    requested = time.monotonic()
    # Bytes actually written to the destination, sampled every 20 ms for 4.5 s.
    history: list[tuple[float, int]] = []
    while time.monotonic() - requested < 4.5:
        history.append((time.monotonic(), bytes_on_disk(dest.bucket)))
        time.sleep(0.02)
    last_change = max(
        (t for (t, n), (_, prev) in zip(history[1:], history, strict=False) if n != prev),
        default=requested,
    )
    assert last_change - requested < 1.0, f"bytes still moving {last_change - requested:.2f} s"
    assert history[-1][1] < 48 * MiB

    first = show(state_dir, job_id)
    time.sleep(3)
    second = show(state_dir, job_id)
    assert first["state"] == second["state"] == "paused"
    assert first["bytes_done"] == second["bytes_done"]
    assert second["rate"] == 0 and second["heartbeat"] is not None
    assert second["result"] == {"key": "data/blob"}  # a detail the operation recorded

    pgvault(state_dir, "jobs", "resume", str(job_id), check=True)
    done = wait_for(
        lambda: (job := show(state_dir, job_id))["state"] != "running" and job,
        timeout=60,
        what="the job to end",
    )
    assert done["state"] == "succeeded", done
    assert done["bytes_done"] == 48 * MiB
    assert file_sha(Path(dest.bucket) / "pfx" / "data" / "blob") == file_sha(source)
    log = pgvault(state_dir, "jobs", "log", str(job_id), check=True).stdout
    for expected in ("pause requested", "paused by the operator", "resumed by the operator"):
        assert expected in log


def test_cancel_aborts_the_multipart_upload_within_seconds(
    store: JobStore, state_dir: Path, tmp_path: Path, make_dest: object
) -> None:
    dest: TestDestination = make_dest("s3")  # type: ignore[operator]
    source = make_source(tmp_path / "src", 64 * MiB)
    request = UploadRequest(
        source,
        dest.url,
        "big",
        endpoint_url=dest.config.endpoint_url,
        max_bandwidth=4 * MiB,
        chunk_size=5 * MiB,
    )
    job_id = detached_upload(store, request)
    wait_for(lambda: show(state_dir, job_id)["bytes_done"] > 11 * MiB, what="parts to go")
    with dest.store() as objects:
        assert [u.key for u in objects.list_pending_uploads()] == ["big"]
    started = time.monotonic()
    result = pgvault(state_dir, "jobs", "cancel", str(job_id), "--wait", "--timeout", "20")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"job {job_id}: cancel requested",
        f"job {job_id}: cancelled",
    ]
    assert took < 5.0
    job = show(state_dir, job_id)
    assert job["state"] == "cancelled" and job["error"] == "cancelled by the operator"
    with dest.store() as objects:
        assert objects.list_pending_uploads() == []
        assert not objects.exists("big")
    again = pgvault(state_dir, "jobs", "pause", str(job_id))
    assert again.returncode == 1
    assert (
        again.stderr.strip() == f"pgvault jobs: error: cannot pause job {job_id}: it is cancelled"
    )


def _tty_session_parent(
    store_path: Path, request: UploadRequest
) -> tuple[subprocess.Popen[bytes], int]:
    """A parent in its own session with a pseudo-terminal as controlling terminal, like a
    login over SSH; it starts a detached job, prints its id and waits for the terminal."""
    code = (
        "import sys, time\n"
        "from core.jobs import JobStore\n"
        "from core.jobs.runner import spawn_detached\n"
        "from tests.support.jobkinds import UPLOAD, UploadRequest\n"
        f"request = UploadRequest(**{request.__dict__!r})\n"
        f"job = spawn_detached(JobStore({str(store_path)!r}), UPLOAD, request)\n"
        "print('JOB', job.id, flush=True)\n"
        "time.sleep(600)\n"
    )
    master, slave = pty.openpty()

    def controlling_terminal() -> None:  # runs after setsid() in the child
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        # as a login shell's: the suite may run under nohup, whose SIG_IGN children inherit
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    parent = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=controlling_terminal,
        cwd=REPO,
    )
    os.close(slave)
    return parent, master


def test_a_detached_job_survives_the_end_of_its_terminal_session(
    store: JobStore, state_dir: Path, tmp_path: Path, make_dest: object
) -> None:
    dest: TestDestination = make_dest("file")  # type: ignore[operator]
    source = make_source(tmp_path / "src", 16 * MiB)
    request = UploadRequest(source, dest.url, "kept", max_bandwidth=4 * MiB)
    parent, master = _tty_session_parent(store.path, request)
    output = b""
    while b"\n" not in output.partition(b"JOB ")[2]:
        output += os.read(master, 1024)
    job_id = int(output.partition(b"JOB ")[2].split()[0])
    wait_for(lambda: show(state_dir, job_id)["state"] == "running", what="the job to run")
    # It yields the CPU to PostgreSQL and the console: JOB_NICENESS below its parent.
    niceness = os.getpriority(os.PRIO_PROCESS, show(state_dir, job_id)["pid"])
    assert niceness == min(19, os.getpriority(os.PRIO_PROCESS, parent.pid) + JOB_NICENESS)
    os.close(master)  # the terminal hangs up: SIGHUP to the session
    assert parent.wait(timeout=10) == -signal.SIGHUP
    job = show(state_dir, job_id)
    assert job["state"] == "running" and job["bytes_done"] < 16 * MiB
    done = wait_for(
        lambda: (j := show(state_dir, job_id))["state"] not in ("running", "pending") and j,
        timeout=60,
        what="the job to end",
    )
    assert done["state"] == "succeeded", done
    assert done["detached"] is True and done["pid"] != parent.pid
    assert file_sha(Path(dest.bucket) / "pfx" / "kept") == file_sha(source)


def test_a_killed_job_is_marked_failed_and_resumed_in_a_new_job(
    store: JobStore, state_dir: Path, tmp_path: Path, make_dest: object
) -> None:
    dest: TestDestination = make_dest("file")  # type: ignore[operator]
    source = make_source(tmp_path / "src", 24 * MiB)
    job_id = detached_upload(
        store, UploadRequest(source, dest.url, "obj", max_bandwidth=4 * MiB, server="pg-k")
    )
    running = wait_for(
        lambda: (j := show(state_dir, job_id))["bytes_done"] > 2 * MiB and j, what="progress"
    )
    os.kill(running["pid"], signal.SIGKILL)
    killed = time.monotonic()
    still = show(state_dir, job_id)
    assert still["state"] == "running"  # the heartbeat is recent: not judged yet
    failed = wait_for(
        lambda: (j := show(state_dir, job_id))["state"] == "failed" and j,
        timeout=DEAD_AFTER + 10,
        interval=0.5,
        what="the dead job to be marked failed",
    )
    assert time.monotonic() - killed < DEAD_AFTER + 5
    assert "process died" in failed["error"] and str(running["pid"]) in failed["error"]

    resumed = pgvault(state_dir, "jobs", "resume", str(job_id), "--detach", check=True)
    new_id = int(resumed.stdout.strip())
    assert new_id != job_id
    done = wait_for(
        lambda: (j := show(state_dir, new_id))["state"] not in ("pending", "running") and j,
        timeout=60,
        what="the resumed job to end",
    )
    assert done["state"] == "succeeded", done
    assert done["resumed_from"] == job_id and done["server"] == "pg-k"
    assert file_sha(Path(dest.bucket) / "pfx" / "obj") == file_sha(source)


_SPAWN_AS_OTHER_HOST = """
import sys
from core.jobs import JobStore
from core.jobs.runner import spawn_detached
from tests.support.jobkinds import UPLOAD, UploadRequest
source, url, store = sys.argv[1:4]
request = UploadRequest(source, url, "obj", max_bandwidth=2 * 1024 * 1024)
print(spawn_detached(JobStore(store), UPLOAD, request).id)
"""


def test_another_hosts_job_is_controlled_while_it_answers_and_refused_once_it_does_not(
    store: JobStore, state_dir: Path, tmp_path: Path, make_dest: object
) -> None:
    """A job whose process runs under another host name (a container sharing the state
    directory: here a UTS namespace) reads the operator's requests from this store while it
    flushes to it. Once it stopped (killed there: this host cannot judge its pid, so it stays
    active), pause, resume and cancel were accepted with exit 0 and never read: now refused,
    exit 1, naming the host, and nothing is recorded."""
    dest: TestDestination = make_dest("file")  # type: ignore[operator]
    source = make_source(tmp_path / "src", 48 * MiB)
    as_other_host = ["unshare", "--uts", "sh", "-c", 'hostname pgvault-other && exec "$@"', "sh"]
    spawned = subprocess.run(
        [
            *as_other_host,
            sys.executable,
            "-c",
            _SPAWN_AS_OTHER_HOST,
            source,
            dest.url,
            str(store.path),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    job_id = int(spawned.stdout.strip())
    running = wait_for(
        lambda: (j := show(state_dir, job_id))["bytes_done"] > MiB and j, what="progress"
    )
    assert running["host"] == "pgvault-other"
    paused = pgvault(state_dir, "jobs", "pause", str(job_id), "--wait", check=True)
    assert "paused" in paused.stdout
    pgvault(state_dir, "jobs", "resume", str(job_id), check=True)
    wait_for(lambda: show(state_dir, job_id)["state"] == "running", what="running again")

    os.kill(running["pid"], signal.SIGKILL)
    time.sleep(DEAD_AFTER + 1)
    for verb in ("pause", "cancel", "resume"):
        refused = pgvault(state_dir, "jobs", verb, str(job_id))
        assert refused.returncode == 1, (verb, refused.stdout, refused.stderr)
        [line] = refused.stderr.strip().splitlines()
        assert f"cannot {verb} job {job_id}: it runs on host pgvault-other" in line, line
        assert f"{verb} it on pgvault-other" in line, line
    assert show(state_dir, job_id)["state"] == "running"  # no request left to nobody


def test_several_jobs_run_at_once_and_list_filters_select_them(
    store: JobStore, state_dir: Path, tmp_path: Path, make_dest: object
) -> None:
    source = make_source(tmp_path / "src", 16 * MiB)
    ids = {}
    for server in ("pg-1", "pg-2", "pg-3"):
        dest: TestDestination = make_dest("file")  # type: ignore[operator]
        ids[server] = detached_upload(
            store, UploadRequest(source, dest.url, "o", server=server, max_bandwidth=4 * MiB)
        )

    def all_moving() -> bool:
        jobs = json.loads(pgvault(state_dir, "jobs", "list", "--format", "json").stdout)
        return sum(j["state"] == "running" and j["bytes_done"] > 0 for j in jobs) == 3

    wait_for(all_moving, what="three jobs running at the same time")
    running = json.loads(
        pgvault(state_dir, "jobs", "list", "--state", "running", "--format", "json").stdout
    )
    assert sorted(j["server"] for j in running) == ["pg-1", "pg-2", "pg-3"]
    for job_id in ids.values():
        result = pgvault(state_dir, "jobs", "watch", str(job_id), "--interval", "1", timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1].startswith(f"job {job_id} succeeded after ")

    def listed(*args: str) -> list[int]:
        out = pgvault(state_dir, "jobs", "list", *args, "--format", "json", check=True)
        return [j["id"] for j in json.loads(out.stdout)]

    everything = sorted(ids.values(), reverse=True)
    assert listed() == everything
    assert listed("--server", "pg-2") == [ids["pg-2"]]
    assert listed("--server", "pg-1,pg-3") == [ids["pg-3"], ids["pg-1"]]
    assert listed("--state", "succeeded", "--kind", "test-upload") == everything
    assert listed("--state", "active") == []
    assert listed("--kind", "backup") == []
    assert listed("--since", "10m") == everything
    future = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 3600))
    assert listed("--since", future) == []
    table = pgvault(state_dir, "jobs", "list", check=True).stdout.splitlines()
    assert table[0].split()[:4] == ["ID", "KIND", "SERVER", "STATE"]
    assert [line.split()[0] for line in table[1:]] == [str(i) for i in everything]
    bad = pgvault(state_dir, "jobs", "list", "--since", "yesterday")
    assert bad.returncode == 3 and bad.stderr.count("\n") == 1 and "--since" in bad.stderr


def test_watch_draws_a_bar_on_a_terminal_and_plain_lines_otherwise(
    store: JobStore, state_dir: Path, tmp_path: Path, make_dest: object
) -> None:
    dest: TestDestination = make_dest("file")  # type: ignore[operator]
    source = make_source(tmp_path / "src", 12 * MiB)
    job_id = detached_upload(store, UploadRequest(source, dest.url, "w", max_bandwidth=4 * MiB))
    master, slave = pty.openpty()
    watcher = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "pgvault"),
            "--state-dir",
            str(state_dir),
            "--batch",
            "jobs",
            "watch",
            str(job_id),
        ],
        stdout=slave,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    os.close(slave)
    plain = pgvault(state_dir, "jobs", "watch", str(job_id), "--interval", "1", timeout=60)
    assert watcher.wait(timeout=30) == 0
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    text = screen.decode()
    assert "\r\x1b[K" in text and "[####" in text and "MiB/s" in text
    assert f"job {job_id} succeeded after" in text
    lines = plain.stdout.splitlines()
    assert "\r" not in plain.stdout and len(lines) >= 2
    assert all(line.startswith(f"job {job_id} ") for line in lines)
    states = [line.split()[2] for line in lines]
    assert "running" in states and lines[-1].startswith(f"job {job_id} succeeded after")
    # A detached job may still be pending when the watcher draws its first line.
    assert set(states[: states.index("running")]) <= {"pending"}
    as_json = pgvault(state_dir, "jobs", "watch", str(job_id), "--format", "json", check=True)
    last = json.loads(as_json.stdout.splitlines()[-1])
    assert last["state"] == "succeeded" and last["bytes_done"] == 12 * MiB


def test_unknown_jobs_and_bad_input_get_one_line_and_the_seeds_codes(state_dir: Path) -> None:
    for args, code, message in [
        (["jobs", "show", "42"], 3, "no job 42 in the job store"),
        (["jobs", "pause", "x1"], 3, "invalid job id 'x1'"),
        (["jobs", "list", "--state", "sleeping"], 3, "unknown job state 'sleeping'"),
        (["jobs", "frobnicate"], 3, "invalid choice"),
    ]:
        result = pgvault(state_dir, *args)
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr and result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr
    assert pgvault(state_dir, "jobs", "list").returncode == 0


def test_a_bad_state_names_active_and_finished_too(state_dir: Path) -> None:
    # The README: "--state also takes active and finished"; the refusal listed only the
    # eight states, so an operator never learnt of the two words from it.
    result = pgvault(state_dir, "jobs", "list", "--state", "done")
    assert result.returncode == 3, result.stderr
    assert "active, finished" in result.stderr and "succeeded" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1


def test_a_job_whose_request_cannot_be_run_fails_with_its_reason(
    store: JobStore, state_dir: Path, tmp_path: Path
) -> None:
    request = UploadRequest(str(tmp_path / "missing"), f"file://{tmp_path}/d", "o")
    job_id = detached_upload(store, request)
    job = wait_for(
        lambda: (j := show(state_dir, job_id))["state"] not in ("pending", "running") and j,
        what="the job to end",
    )
    assert job["state"] == "failed"
    assert "FileNotFoundError" in job["error"] and "missing" in job["error"]
    worker_log = (state_dir / "workers" / f"job-{job_id}.log").read_text()
    assert "exits with 4" in worker_log


def test_resume_in_the_foreground_draws_a_bar_and_shows_in_jobs_list(
    store: JobStore, state_dir: Path, tmp_path: Path, make_dest: object
) -> None:
    dest: TestDestination = make_dest("file")  # type: ignore[operator]
    source = make_source(tmp_path / "src", 12 * MiB)
    failed = store.create(
        "test-upload",
        state=JobState.RUNNING,
        options=UPLOAD.options(UploadRequest(source, dest.url, "fg", max_bandwidth=4 * MiB)),
        entry=UPLOAD.entry,
    )
    store.transition(failed.id, JobState.FAILED, error="the machine rebooted")
    master, slave = pty.openpty()
    foreground = subprocess.Popen(
        [PGVAULT, "--state-dir", str(state_dir), "--batch", "jobs", "resume", str(failed.id)],
        stdout=subprocess.PIPE,
        stderr=slave,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    os.close(slave)
    running = wait_for(
        lambda: [j for j in store.list_jobs() if j.resumed_from == failed.id and j.bytes_done],
        what="the resumed job in the list",
    )[0]
    assert running.state is JobState.RUNNING and not running.detached
    assert running.pid == foreground.pid
    out, _ = foreground.communicate(timeout=60)
    assert foreground.returncode == 0
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    text = screen.decode()
    assert f"job {failed.id}: resuming in a new job" in text
    assert f"\r\x1b[Kjob {running.id} [" in text and "MiB/s" in text
    assert out.decode().startswith(f"job {running.id} succeeded after")
    assert store.get(running.id).state is JobState.SUCCEEDED


def test_ctrl_c_cancels_a_foreground_job_cleanly(
    store: JobStore, state_dir: Path, tmp_path: Path, make_dest: object
) -> None:
    dest: TestDestination = make_dest("file")  # type: ignore[operator]
    source = make_source(tmp_path / "src", 32 * MiB)
    failed = store.create(
        "test-upload",
        state=JobState.RUNNING,
        options=UPLOAD.options(UploadRequest(source, dest.url, "int", max_bandwidth=4 * MiB)),
        entry=UPLOAD.entry,
    )
    store.transition(failed.id, JobState.FAILED, error="crashed")
    foreground = subprocess.Popen(
        [PGVAULT, "--state-dir", str(state_dir), "--batch", "jobs", "resume", str(failed.id)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    job = wait_for(
        lambda: [j for j in store.list_jobs() if j.resumed_from == failed.id and j.bytes_done],
        what="the resumed job to move",
    )[0]
    foreground.send_signal(signal.SIGINT)
    _, err = foreground.communicate(timeout=20)
    assert foreground.returncode == 1
    assert err.decode().splitlines()[-1] == (
        f"pgvault jobs: error: job {job.id} cancelled: interrupted by SIGINT"
    )
    ended = store.get(job.id)
    assert ended.state is JobState.CANCELLED and ended.error == "interrupted by SIGINT"
    with dest.store() as objects:
        assert objects.list_pending_uploads() == [] and not objects.exists("int")


def test_list_shows_the_active_jobs_and_the_newest_ended_ones_unless_asked_for_all(
    store: JobStore, state_dir: Path
) -> None:
    # A job paused long ago (its process alive: this one), then a pile of ended jobs, as
    # WAL pushes leave them: every one was listed, the paused job lost among them.
    paused = store.create("backup", state=JobState.RUNNING, server="old", process=this_process())
    store.request_pause(paused.id)
    for n in range(45):
        job = store.create("wal-push", state=JobState.RUNNING, server=f"s{n}")
        store.transition(job.id, JobState.SUCCEEDED)
    listed = pgvault(state_dir, "jobs", "list", check=True)
    rows = listed.stdout.splitlines()[1:]
    assert len(rows) == 1 + LIST_ENDED, listed.stdout
    assert rows[-1].split()[:4] == [str(paused.id), "backup", "old", "pause-requested"]
    assert "25 older ended jobs not shown: --all lists every job" in listed.stderr
    every = pgvault(state_dir, "jobs", "list", "--all", check=True)
    assert len(every.stdout.splitlines()) == 1 + 46 and every.stderr == ""
    chosen = pgvault(state_dir, "jobs", "list", "--kind", "wal-push", check=True)
    assert len(chosen.stdout.splitlines()) == 1 + 45
    as_json = pgvault(state_dir, "jobs", "list", "--format", "json", check=True)
    assert len(json.loads(as_json.stdout)) == 46


def test_resume_of_a_failed_restore_says_that_running_it_again_continues_a_killed_one(
    store: JobStore, state_dir: Path
) -> None:
    job = store.create("restore", state=JobState.RUNNING, entry="core.restore.job:RESTORE")
    store.transition(job.id, JobState.FAILED, error="the job's process died (pid 1 on h)")
    result = pgvault(state_dir, "jobs", "resume", str(job.id))
    assert result.returncode == 1 and result.stdout == "", result
    # Before: 'a failed restore removes what it wrote', untrue of a killed one (whose
    # files a rerun keeps: core.restore.rerun).
    assert result.stderr.strip().endswith(
        "restore jobs cannot be resumed after they fail; run the same restore command "
        "again: a killed restore continues where it stopped (the files it wrote are checked "
        "and kept); one that failed removed what it wrote"
    ), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "s3://AKIACANARY:CanarySecret1@bucket/pfx",
        "gs://user:CanarySecret1@bucket/pfx",
        "azure://user:CanarySecret1@container/pfx",
        "file://user:CanarySecret1@/tmp/pgvault-nowhere",
    ],
)
def test_credentials_in_a_bucket_urls_user_part_are_refused_and_never_recorded(
    state_dir: Path, url: str
) -> None:
    # Before: s3://KEY:SECRET@bucket was taken as the bucket 'KEY:SECRET@bucket'; the
    # detached job failed (exit 0, then 'failed') with the secret in its error, its log and
    # its options.
    result = pgvault(state_dir, "backup", "--detach", "--no-wal-check", url, "pg1")
    assert result.returncode == 3, result
    assert "take no USER:PASSWORD@ part" in result.stderr, result.stderr
    assert "CanarySecret1" not in result.stdout + result.stderr
    assert "AKIACANARY" not in result.stderr
    for path in state_dir.rglob("*"):
        if path.is_file():
            assert b"CanarySecret1" not in path.read_bytes(), path


@pytest.mark.skipif(os.geteuid() != 0, reason="only root gives the files it makes away")
def test_a_state_directory_postgres_owns_stays_usable_by_postgres_after_root_used_it() -> None:
    pg = ensure_postgres_user()
    base = Path(world_dir("pgvault-shared-state-"))
    home = base / "pg-home"  # postgres's, as /var/lib/postgresql is
    home.mkdir()
    os.chown(home, pg.pw_uid, pg.pw_gid)
    source = home / "backups"
    source.mkdir()
    os.chown(source, pg.pw_uid, pg.pw_gid)
    state = home / "state" / "pgvault"  # missing: made by root's first command

    # root (sudo pgvault): a detached copy, which ends at once with nothing to copy
    made = subprocess.run(
        [PGVAULT, "--state-dir", str(state), "--batch", "copy", f"file://{source}", "pg1",
         "--all", "--to", f"file://{base}/copies", "--detach"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    job_id = int(made.stdout.strip())
    wait_for(lambda: show(state, job_id)["state"] == "failed", what="the copy to end")
    worker_log = state / "workers" / f"job-{job_id}.log"
    assert os.stat(state.parent).st_uid == pg.pw_uid  # made on the way, as mkdir -p would
    for path in (state, state / "jobs.db", worker_log.parent, worker_log):
        assert (os.stat(path).st_uid, os.stat(path).st_mode & 0o077) == (pg.pw_uid, 0), path

    # postgres (archive_command, its console) lists the job and reads its log
    listed = as_postgres(
        [pgvault_for_postgres(), "--state-dir", str(state), "--batch", "jobs", "list",
         "--format", "json"]
    )  # fmt: skip
    assert [j["id"] for j in json.loads(listed.stdout)] == [job_id]
    assert as_postgres(["cat", str(worker_log)]).returncode == 0
