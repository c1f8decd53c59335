"""A logical backup copied from a local directory to fake-gcs-server, as a detached job that
is paused and resumed, then restored from the copy under a new name and compared."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.jobs import show, wait_for
from tests.support.logical import BINDIRS_ENV, SHOP, make_shop
from tests.support.postgres import Cluster

SERVER = "copy-srv"


def _logical_ids(dest: TestDestination) -> list[str]:
    result = pgvault("backup-list", dest.url, SERVER, "--format", "json", env=dest.env)
    assert result.returncode == 0, result.stderr
    return [e["backup_id"] for e in json.loads(result.stdout)["logical_backups"]]


def test_a_logical_copy_pauses_resumes_and_restores_from_the_other_provider(
    pg: Cluster, make_dest: Callable[..., TestDestination], job_store_dir: str
) -> None:
    make_shop(pg)
    local, gcs = make_dest("file"), make_dest("gcs")
    taken = pgvault(
        "backup", local.url, SERVER, *pg.conninfo_args(), "--database", SHOP, env=BINDIRS_ENV
    )
    assert taken.returncode == 0, taken.stderr
    backup_id = taken.stdout.strip()

    started = pgvault(
        "copy", local.url, SERVER, backup_id, "--to", gcs.url, "--max-bandwidth", "64KiB",
        "--detach", env=gcs.env,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    job_id = int(started.stdout.strip())
    wait_for(lambda: show(job_store_dir, job_id)["bytes_done"] > 0, timeout=60, interval=0.1)
    paused = pgvault("jobs", "pause", str(job_id), "--wait", "--timeout", "20")
    assert paused.returncode == 0, paused.stderr
    time.sleep(1.0)  # what was in flight within the second lands
    first = show(job_store_dir, job_id)
    time.sleep(2.0)
    second = show(job_store_dir, job_id)
    assert first["state"] == second["state"] == "paused", second
    assert first["bytes_done"] == second["bytes_done"] < second["bytes_total"]
    with gcs.store() as store:  # logical.json comes last: not listed yet
        assert not store.exists(f"{SERVER}/logical/{backup_id}/logical.json")
    assert pgvault("jobs", "resume", str(job_id)).returncode == 0
    done = wait_for(
        lambda: (j := show(job_store_dir, job_id))["state"] in ("succeeded", "failed") and j,
        timeout=300,
        interval=0.5,
    )
    assert done["state"] == "succeeded", done
    assert done["result"]["logical"] == [backup_id] and done["result"]["skipped"] == 0
    assert _logical_ids(gcs) == [backup_id]
    listed = pgvault("backup-list", local.url, SERVER, "--format", "json")
    assert json.loads(listed.stdout)["logical_backups"][0]["copies"] == [gcs.url]
    text = pgvault("backup-list", local.url, SERVER).stdout.splitlines()
    header = next(i for i, line in enumerate(text) if line.startswith("Backup ID"))
    assert text[header].split()[-1] == "Copies" and text[header + 1].split()[-1] == "1"
    # backup-show names the copies as it does a physical backup's
    shown = pgvault("backup-show", local.url, SERVER, backup_id)
    assert shown.returncode == 0, shown.stderr
    assert f"  {'Copies':<23}: {gcs.url}" in shown.stdout.splitlines(), shown.stdout
    shown_json = pgvault("backup-show", local.url, SERVER, backup_id, "--format", "json")
    assert json.loads(shown_json.stdout)["copies"] == [gcs.url]

    restored = pgvault(
        "restore", gcs.url, SERVER, backup_id, *pg.restore_flags(), "--new-db-name", "from_gcs",
        env={**gcs.env, **BINDIRS_ENV},
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert pg.table_checksums("from_gcs") == pg.table_checksums(SHOP)
