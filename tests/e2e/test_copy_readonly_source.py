"""A source the copy cannot write to still gets its copy, with a warning (exit 0).

The source directory is made read-only (`chmod -R a-w`) and the copy runs as the postgres
OS user (root would write anyway): the copies record's lock cannot be created, so the record
is not written, but the target holds the finished copy, the job succeeded and its result and
stderr carry the warning.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from core.catalog.reader import Catalog
from tests.support.catalog import object_keys, put_backup, put_wal
from tests.support.destinations import TestDestination
from tests.support.postgres import as_postgres, ensure_postgres_user

SERVER = "pg1"
WAL = "000000010000000000000002"
BACKUP = "20260102T000000"
REPO = str(Path(__file__).resolve().parents[2])


def test_a_read_only_source_gets_its_copy_with_a_warning(
    make_dest: Callable[..., TestDestination], pgvault_bin: str, tmp_path: Path
) -> None:
    local, other = make_dest("file"), make_dest("file")
    put_backup(local, BACKUP, begin=WAL, end=WAL)
    put_wal(local, [WAL])
    source_dir = local.url.removeprefix("file://")
    pw = ensure_postgres_user()
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, pw.pw_uid, pw.pw_gid)
    os.chmod(tmp_path, 0o755)
    subprocess.run(["chown", "-R", "postgres:", source_dir], check=True)
    subprocess.run(["chmod", "-R", "a-w", source_dir], check=True)
    try:
        copied = as_postgres(
            [pgvault_bin, "--batch", "copy", local.url, SERVER, BACKUP, "--to", other.url,
             "--format", "json"],
            env={"PYTHONPATH": REPO, "PGVAULT_STATE_DIR": str(state)},
            check=False,
        )  # fmt: skip
    finally:
        subprocess.run(["chmod", "-R", "u+w", source_dir], check=True)
    assert copied.returncode == 0, copied.stderr
    report = json.loads(copied.stdout)
    assert len(report["warnings"]) == 1, report
    assert "copies record of pg1 was not written" in report["warnings"][0]
    assert "copies record of pg1 was not written" in copied.stderr
    with other.store() as store:
        assert [b.backup_id for b in Catalog(store, SERVER).backups()] == [BACKUP]
    assert not any("copies" in key for key in object_keys(local))
