"""Resume by chunk, end to end: a one-part backup SIGKILLed at about 90% and resumed sends
at most 15% of its bytes again, counted on the wire by a proxy in front of moto, Azurite or
fake-gcs-server; the backup is then restored, PostgreSQL started on it and every table
compared."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.backup.part_uploads import UPLOAD_DIR, UPLOAD_SUFFIX, StoredBackup, resumable_tokens
from core.catalog.layout import ServerLayout
from core.errors import ObjectNotFound
from core.jobs.liveness import DEAD_AFTER
from tests.e2e.test_backup_jobs import (
    SERVER,
    backup_args,
    detach,
    restore_and_compare,
    resume,
)
from tests.support.destinations import TestDestination
from tests.support.emulators import Emulator
from tests.support.fault_proxy import FaultProxy, Script, through_proxy
from tests.support.jobs import pgvault, show, wait_for
from tests.support.postgres import Cluster
from tests.support.sample import archived_cluster, checksums, populate

MiB = 1024 * 1024
FLAGS = ("-S", "10GB", "-J", "1", "--min-chunk-size", "5MB", "--max-bandwidth", "12MB")


@pytest.fixture(scope="module")
def source() -> Iterator[tuple[Cluster, str, dict[str, Any]]]:
    # A cluster that holds still (no autovacuum) with about 200 MB in one data archive.
    cluster, archive = archived_cluster(settings={"autovacuum": "off"})
    try:
        populate(cluster, rows=20_000)
        cluster.sql(
            "create table filler as select g as id, repeat(md5(g::text), 30) as pad "
            "from generate_series(1, 150000) g"
        )
        cluster.sql("vacuum (freeze, analyze)")
        cluster.sql("checkpoint")
        yield cluster, archive, checksums(cluster)
    finally:
        cluster.drop()
        shutil.rmtree(archive, ignore_errors=True)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def _recorded(dest: TestDestination, name: str) -> int:
    """Bytes of `name`'s chunks the killed run recorded as stored (0 before the first, or
    while the record is being replaced: a GCS read pins the generation it began with)."""
    with dest.store() as store:
        for info in store.list_objects(""):
            if info.key.endswith(f"/{UPLOAD_DIR}/{name}{UPLOAD_SUFFIX}"):
                try:
                    body = json.loads(store.get_bytes(info.key))
                except ObjectNotFound:
                    return 0
                return sum(int(c["chunk"]["size"]) for c in body["chunks"])
    return 0


def _tar_bytes(dest: TestDestination, backup_id: str) -> int:
    with dest.store() as store:
        prefix = f"{SERVER}/base/{backup_id}/"
        return sum(o.size for o in store.list_objects(prefix) if ".tar" in o.key)


@pytest.mark.parametrize("provider", ["s3", "azure", "gcs"])
def test_a_backup_killed_at_90_percent_sends_at_most_15_percent_again(
    provider: str,
    source: tuple[Cluster, str, dict[str, Any]],
    state_dir: Path,
    make_dest: object,
    emulators: dict[str, Emulator],
) -> None:
    cluster, archive, tables = source
    # The size of the one data part, from a backup to a local directory.
    local: TestDestination = make_dest("file")  # type: ignore[operator]
    full = pgvault(
        state_dir,
        "backup",
        "--no-wal-check",
        "--immediate-checkpoint",
        "-S",
        "10GB",
        *cluster.conninfo_args(),
        local.url,
        SERVER,
    )
    assert full.returncode == 0, full.stderr
    with local.store() as store:
        data_size = store.head(f"{SERVER}/base/{full.stdout.strip()}/data.tar").size

    with FaultProxy(emulators[provider].port, Script([])) as proxy:
        direct: TestDestination = make_dest(provider)  # type: ignore[operator]
        dest = through_proxy(direct, emulators, proxy)
        job_id = detach(state_dir, cluster, dest, *FLAGS)
        # The pid first: asking for it at 90% would let a few more percent through.
        pid = wait_for(lambda: show(state_dir, job_id).get("pid"), what="the job's pid")
        wait_for(
            lambda: _recorded(direct, "data.tar") >= 0.9 * data_size,
            timeout=240,
            interval=0.1,
            what="90% of data.tar stored",
        )
        os.kill(pid, signal.SIGKILL)
        at_kill = _recorded(direct, "data.tar")
        failed = wait_for(
            lambda: (j := show(state_dir, job_id))["state"] == "failed" and j,
            timeout=DEAD_AFTER + 15,
            interval=0.5,
            what="the killed job to be marked failed",
        )
        backup_id = failed["result"]["backup_id"]
        with direct.store() as store:  # the killed part's upload is kept for the resume
            assert [u.key.rsplit("/", 1)[-1] for u in store.list_pending_uploads("")] == [
                "data.tar"
            ]
        before = proxy.received
        new = resume(state_dir, dest, job_id, backup_id)
        sent = proxy.received - before

    total = _tar_bytes(direct, backup_id)
    log = pgvault(state_dir, "jobs", "log", str(new["id"]), check=True).stdout
    print(
        f"\nresume by chunk ({provider}): killed with {at_kill / data_size:.0%} of data.tar stored "
        f"({at_kill} of {data_size} bytes); the resumed run sent {sent} bytes "
        f"({sent / total:.1%} of the backup's {total} archive bytes)"
    )
    assert "bytes its killed upload stored kept, not sent again" in log, log
    assert new["result"]["reused_stored_bytes"] >= at_kill
    assert sent <= 0.15 * total, log
    restore_and_compare(cluster, archive, tables, direct, backup_id)


@pytest.mark.parametrize("provider", ["file", "gcs"])  # GCS: chunk objects in .pgvault-tmp/
def test_a_killed_part_stays_for_a_resume_until_the_backup_is_deleted(
    provider: str,
    source: tuple[Cluster, str, dict[str, Any]],
    state_dir: Path,
    make_dest: object,
) -> None:
    cluster, _, _ = source
    dest: TestDestination = make_dest(provider)  # type: ignore[operator]
    job_id = detach(state_dir, cluster, dest, *FLAGS)
    wait_for(lambda: _recorded(dest, "data.tar") > 0, timeout=120, what="a chunk recorded")
    os.kill(show(state_dir, job_id)["pid"], signal.SIGKILL)
    killed = wait_for(
        lambda: (j := show(state_dir, job_id))["state"] == "failed" and j,
        timeout=DEAD_AFTER + 15,
        interval=0.5,
        what="the killed job to be marked failed",
    )["result"]["backup_id"]

    # The next backup cleans up after the dead run but keeps the part recorded chunk by chunk.
    other = pgvault(state_dir, *backup_args(cluster, dest, "-S", "10GB"), env=dest.env)
    assert other.returncode == 0, other.stderr
    with dest.store() as store:
        tokens = resumable_tokens(StoredBackup(store, ServerLayout(SERVER), killed))
        left = store.list_pending_uploads("")
        assert len(tokens) == 1 and [u.upload_id.rsplit("/", 1)[-1] for u in left] == [*tokens]

    deleted = pgvault(
        state_dir, "backup-delete", *dest.cli_args, dest.url, SERVER, "-b", killed, env=dest.env
    )
    assert deleted.returncode == 0, deleted.stderr
    with dest.store() as store:
        assert store.list_pending_uploads("") == []
