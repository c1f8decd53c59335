"""A killed (SIGKILL: pgvault and its pg_dump) and a cancelled logical backup on S3 (moto):
never listed as restorable, then `jobs resume ID` finishes the backup under the same ID on a
new snapshot; restored under a new name and compared table by table with the source."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.jobs import JobStore
from core.logical.layout import LogicalLayout
from tests.support.cli import pgvault, spawn
from tests.support.destinations import TestDestination
from tests.support.jobs import show, wait_for
from tests.support.logical import (
    BINDIRS_ENV,
    SHOP,
    make_shop,
    pg_dumps,
)
from tests.support.postgres import Cluster

SERVER = "resume-srv"


@pytest.fixture
def shop(pg: Cluster) -> Cluster:
    """The shop and eight tables of hex text (~13 MB each, ~7.5 MB gzipped: each dumped file
    is a multipart upload). pg_dump's gzip takes ~0.25 s a table, so when the first file is
    finished pg_dump has tables left and is stopped (staging is full); plain text is dumped
    faster than the dumper looks at staging (0.2 s) and would be over before it is stopped."""
    make_shop(pg)
    for n in range(8):
        pg.sql(
            f"create table public.big_{n} as select g, (select string_agg(md5((g * 10 + i)::text),"
            " '') from generate_series(1, 10) i) as t from generate_series(1, 40000) g",
            dbname=SHOP,
        )
    return pg


@pytest.fixture
def s3(make_dest: Callable[..., TestDestination]) -> TestDestination:
    return make_dest("s3")


def _slow_backup_args(shop: Cluster, dest: TestDestination, staging: Path) -> list[str]:
    """A backup still dumping and uploading (pg_dump's gzip, 4 MB/s: multipart uploads) for
    seconds after its first upload began."""
    return [
        "backup", dest.url, SERVER, *dest.cli_args, *shop.conninfo_args(), "--database", SHOP,
        "--gzip", "-J", "2", "--staging-dir", str(staging), "--staging-limit", "1",
        "--max-bandwidth", "4MB",
    ]  # fmt: skip


def _wait_mid_upload(dest: TestDestination, staging: Path, ended: Callable[[], str | None]) -> None:
    """A multipart upload under way while pg_dump is still there: killed or cancelled
    mid-upload and mid-dump. `ended` says why the backup is over (None while it runs): a
    backup that ends first fails the test at once, saying why, not after the timeout."""
    seen = {"a pending upload": False, "pg_dump": False}

    def mid_upload() -> bool:
        pending = bool(store.list_pending_uploads(f"{SERVER}/logical/"))
        dumping = bool(pg_dumps(staging))
        seen["a pending upload"] |= pending
        seen["pg_dump"] |= dumping
        if not (pending and dumping) and (why := ended()) is not None:
            raise AssertionError(f"the backup ended before it was mid-upload: {why}")
        return pending and dumping

    with dest.store() as store:
        try:
            wait_for(
                mid_upload,
                timeout=120,
                interval=0.2,
                what="a multipart upload of the dump while pg_dump runs",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc} (each seen on its own: {seen})") from None


def _process_ended(proc: subprocess.Popen[str]) -> Callable[[], str | None]:
    def ended() -> str | None:
        if proc.poll() is None:
            return None
        out, err = proc.communicate()
        return f"pgvault exited {proc.returncode}: {err.strip()} {out.strip()}"

    return ended


def _job_ended(state_dir: str, job_id: int) -> Callable[[], str | None]:
    def ended() -> str | None:
        with JobStore(Path(state_dir) / "jobs.db") as jobs:
            job = jobs.get(job_id)
        return f"job {job_id} {job.state.value}: {job.error}" if job.final else None

    return ended


def _env(dest: TestDestination) -> dict[str, str]:
    return {**dest.env, **BINDIRS_ENV}


def _listed(dest: TestDestination) -> list[tuple[str, str]]:
    """(backup ID, status) of every logical backup backup-list shows."""
    result = pgvault(
        "backup-list", dest.url, SERVER, *dest.cli_args, "--format", "json", env=dest.env
    )
    if result.returncode == 1 and "has no backups" in result.stderr:
        return []
    assert result.returncode == 0, result.stderr
    return [(e["backup_id"], e["status"]) for e in json.loads(result.stdout)["logical_backups"]]


def _not_restorable(shop: Cluster, dest: TestDestination, backup_id: str) -> None:
    refused = pgvault(
        "restore", dest.url, SERVER, *dest.cli_args, backup_id, *shop.restore_flags(),
        "--new-db-name", "never", env=_env(dest),
    )  # fmt: skip
    assert refused.returncode == 1 and "not found" in refused.stderr, refused.stderr
    assert shop.one("select count(*) from pg_database where datname = 'never'") == 0


def _resume_and_restore(
    shop: Cluster, dest: TestDestination, state_dir: str, job_id: int, backup_id: str
) -> dict[str, Any]:
    """`jobs resume ID` finishes the backup under its ID; restored under a new name, every
    table equals the source's (which holds still: the new snapshot sees what it holds)."""
    resumed = pgvault("jobs", "resume", str(job_id), env=_env(dest), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    jobs = json.loads(pgvault("jobs", "list", "--format", "json", env=dest.env).stdout)
    (new,) = [j for j in jobs if j["resumed_from"] == job_id]
    assert new["state"] == "succeeded", new
    assert new["result"]["backup_id"] == backup_id
    log = pgvault("jobs", "log", str(new["id"])).stdout
    assert "dump is taken again on a new one under the same ID" in log, log
    assert _listed(dest) == [(backup_id, "DONE")]
    layout = LogicalLayout(SERVER)
    with dest.store() as store:
        assert store.list_pending_uploads("") == []
        keys = [o.key for o in store.list_objects(layout.backup_prefix(backup_id))]
    assert layout.manifest(backup_id) in keys and not [k for k in keys if "lease" in k]
    restored = pgvault(
        "restore", dest.url, SERVER, *dest.cli_args, backup_id, *shop.restore_flags(),
        "--new-db-name", "resumed", env=_env(dest),
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert shop.table_checksums("resumed") == shop.table_checksums(SHOP)
    return new


def test_a_killed_logical_backup_is_never_restorable_and_its_resume_finishes(
    shop: Cluster, s3: TestDestination, tmp_path: Path, job_store_dir: str
) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    proc = spawn(*_slow_backup_args(shop, s3, staging), env=_env(s3))
    _wait_mid_upload(s3, staging, _process_ended(proc))
    dumps = [pid for pid, _ in pg_dumps(staging)]
    assert dumps  # stopped by the staging limit, not finished
    for pid in (proc.pid, *dumps):  # kill -9 of pgvault and of its pg_dump and workers
        os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    wait_for(lambda: not pg_dumps(staging), timeout=30, what="pg_dump to be gone")
    assert os.listdir(staging), "the killed run's staging directory is left behind"

    jobs = json.loads(pgvault("jobs", "list", "--format", "json").stdout)
    (job,) = [j for j in jobs if j["pid"] == proc.pid]  # the store is the session's
    failed = wait_for(
        lambda: (j := show(job_store_dir, job["id"]))["state"] == "failed" and j,
        timeout=30,
        interval=0.5,
        what="the killed job to be marked failed",
    )
    assert "process died" in failed["error"]
    backup_id = failed["result"]["backup_id"]
    # Listed by ID as abandoned, never DONE, and not restorable.
    assert _listed(s3) == [(backup_id, "ABANDONED")]
    listing = pgvault("backup-list", s3.url, SERVER, *s3.cli_args, env=s3.env)
    text = listing.stdout + listing.stderr
    assert any(backup_id in line and "ABANDONED" in line for line in text.splitlines()), text
    _not_restorable(shop, s3, backup_id)
    with s3.store() as store:  # what the dead run left: its files, lease, unfinished uploads
        left = [o.key for o in store.list_objects(f"{SERVER}/logical/{backup_id}/")]
        pending = store.list_pending_uploads(f"{SERVER}/logical/{backup_id}/")
    assert any("/db/" in k for k in left) and any(k.endswith("pgvault-lease.json") for k in left)
    assert pending  # the dead run's unfinished multipart upload

    _resume_and_restore(shop, s3, job_store_dir, job["id"], backup_id)
    assert os.listdir(staging) == []  # the dead run's staging directory is removed too


def test_a_cancelled_logical_backup_is_never_restorable_and_its_resume_finishes(
    shop: Cluster, s3: TestDestination, tmp_path: Path, job_store_dir: str
) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    started = pgvault(*_slow_backup_args(shop, s3, staging), "--detach", env=_env(s3))
    assert started.returncode == 0, started.stderr
    job_id = int(started.stdout.strip())
    _wait_mid_upload(s3, staging, _job_ended(job_store_dir, job_id))
    cancelled = pgvault("jobs", "cancel", str(job_id), "--wait", "--timeout", "60")
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    job = show(job_store_dir, job_id)
    assert job["state"] == "cancelled"
    backup_id = job["result"]["backup_id"]
    # A cancel removes what it stored: nothing is listed, nothing restorable, no upload left.
    assert _listed(s3) == []
    _not_restorable(shop, s3, backup_id)
    with s3.store() as store:
        assert list(store.list_objects(f"{SERVER}/logical/")) == []
        assert store.list_pending_uploads("") == []
    assert pg_dumps(staging) == [] and os.listdir(staging) == []

    _resume_and_restore(shop, s3, job_store_dir, job_id, backup_id)
    # A finished backup is not taken again (the retry is a new job that fails, saying why).
    again = pgvault("jobs", "resume", str(job_id), env=_env(s3))
    assert again.returncode == 1 and "it is finished" in again.stderr, again.stderr


def test_the_next_logical_backup_removes_what_a_killed_one_left(
    shop: Cluster, s3: TestDestination, tmp_path: Path
) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    proc = spawn(*_slow_backup_args(shop, s3, staging), env=_env(s3))
    _wait_mid_upload(s3, staging, _process_ended(proc))
    proc.kill()  # pg_dump dies with it (PR_SET_PDEATHSIG)
    proc.communicate(timeout=60)
    wait_for(lambda: not pg_dumps(staging), timeout=30, what="pg_dump to be gone")
    ((killed, status),) = _listed(s3)
    assert status == "ABANDONED" and os.listdir(staging)
    with s3.store() as store:
        assert store.list_pending_uploads(f"{SERVER}/logical/{killed}/")

    done = pgvault(
        "backup", s3.url, SERVER, *s3.cli_args, *shop.conninfo_args(), "--database", SHOP,
        "--table", "sales.customers", "--staging-dir", str(staging), env=_env(s3),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    new_id = done.stdout.strip()
    assert new_id != killed and _listed(s3) == [(new_id, "DONE")]
    with s3.store() as store:
        assert list(store.list_objects(f"{SERVER}/logical/{killed}/")) == []
        assert store.list_pending_uploads("") == []
    assert os.listdir(staging) == []


@pytest.mark.parametrize("provider", ["s3", "file"])
def test_force_delete_of_a_killed_logical_backup_aborts_its_unfinished_uploads(
    shop: Cluster, make_dest: Callable[..., TestDestination], tmp_path: Path, provider: str
) -> None:
    """backup-delete --force removes a killed backup's unfinished uploads (S3 multipart,
    local `.pgvault-partial` files) with its objects: nothing lists them afterwards."""
    dest = make_dest(provider)
    staging = tmp_path / "staging"
    staging.mkdir()
    proc = spawn(*_slow_backup_args(shop, dest, staging), env=_env(dest))
    _wait_mid_upload(dest, staging, _process_ended(proc))
    proc.kill()  # pg_dump dies with it (PR_SET_PDEATHSIG)
    proc.communicate(timeout=60)
    wait_for(lambda: not pg_dumps(staging), timeout=30, what="pg_dump to be gone")
    ((killed, status),) = _listed(dest)
    assert status == "ABANDONED"
    with dest.store() as store:
        pending = len(store.list_pending_uploads(f"{SERVER}/logical/{killed}/"))
    assert pending

    args = ("backup-delete", dest.url, SERVER, *dest.cli_args, "-b", killed, "--force")
    planned = pgvault(*args, "--dry-run", env=dest.env)
    assert planned.returncode == 0, planned.stderr
    assert f"{pending} unfinished uploads to abort" in planned.stdout, planned.stdout
    deleted = pgvault(*args, "--format", "json", env=dest.env)
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout)["unfinished_uploads"] == pending
    assert _listed(dest) == []
    with dest.store() as store:
        assert list(store.list_objects(f"{SERVER}/logical/")) == []
        assert store.list_pending_uploads("") == []
    if provider == "file":  # no hidden file is left under the server's logical/ either
        root = Path(dest.url.removeprefix("file://"))
        assert [p for p in root.rglob("*") if p.is_file() and "logical" in str(p)] == []
