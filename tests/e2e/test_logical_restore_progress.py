"""A logical restore's bar moves while pg_restore loads, not only at its end: each table
whose data pg_restore has finished loading (-j 2 and -j 1 alike) claims most of its file's
share of the restore (`tables_loaded` counts them, live in `jobs show`); the rest comes
once the database is complete and renamed, so the bar is full only then."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.logical import BINDIRS_ENV, SHOP, make_shop
from tests.support.postgres import Cluster

SERVER = "progress-srv"


def _table_data_items(pg: Cluster, dump_dir: Path) -> int:
    """TABLE DATA entries of the stored toc that have a data file (pg_restore -l)."""
    listing = subprocess.run(
        [os.path.join(pg.bindir, "pg_restore"), "-l", str(dump_dir)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    ids = [line.split(";")[0] for line in listing.splitlines() if " TABLE DATA " in line]
    return sum(1 for i in ids if any(p.name.startswith(f"{i}.") for p in dump_dir.iterdir()))


def _restore_job(state: Path) -> dict[str, object]:
    listed = pgvault("jobs", "list", "--kind", "logical-restore", "--format", "json",
                     env={"PGVAULT_STATE_DIR": str(state)})  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    (job,) = json.loads(listed.stdout)
    shown = pgvault("jobs", "show", str(job["id"]), "--format", "json",
                    env={"PGVAULT_STATE_DIR": str(state)})  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    record: dict[str, object] = json.loads(shown.stdout)
    return record


def test_the_restore_phase_counts_the_tables_pg_restore_has_loaded(
    pg: Cluster, make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    make_shop(pg)
    dest = make_dest("file")
    made = pgvault(
        "backup", dest.url, SERVER, *pg.conninfo_args(), "--database", SHOP, env=BINDIRS_ENV
    )
    assert made.returncode == 0, made.stderr
    backup_id = made.stdout.strip()
    root = Path(dest.url.removeprefix("file://"))
    dump_dir = root / SERVER / "logical" / backup_id / "db" / quote(SHOP, safe="")
    loaded_tables = _table_data_items(pg, dump_dir)
    assert loaded_tables >= 5

    for jobs, name in (("2", "copy_parallel"), ("1", "copy_serial")):
        state = tmp_path / f"state-{jobs}"
        restored = pgvault(
            "restore", dest.url, SERVER, backup_id, *pg.restore_flags(), "--database", SHOP,
            "--new-db-name", name, "-J", jobs, env={**BINDIRS_ENV, "PGVAULT_STATE_DIR": str(state)},
        )  # fmt: skip
        assert restored.returncode == 0, restored.stderr
        job = _restore_job(state)
        assert job["bytes_done"] == job["bytes_total"], job
        assert job["phase"] == "done", job  # as a physical restore's
        result = job["result"]
        assert isinstance(result, dict)
        # -j 2 logs "finished item N TABLE DATA"; -j 1 only "processing data for table",
        # each table loaded once the next item starts: both count every table
        assert result.get("tables_loaded") == loaded_tables, (jobs, result)
        assert pg.table_checksums(name) == pg.table_checksums(SHOP)
