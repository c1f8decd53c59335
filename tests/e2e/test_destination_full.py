"""A full disk is named, never an unexpected error, and loses nothing: archive_command fails
with one line naming the directory and what the file system holds (PostgreSQL keeps the
segment and retries), a backup fails and is listed FAILED with nothing partial left, and
once there is room again the same segments are archived and a backup is DONE. A restore
into a full file system fails the same way.

The full disks are real: small tmpfs mounts, grown in place (`mount -o remount,size=`).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable

from tests.support.cli import pgvault
from tests.support.postgres import as_postgres, make_cluster
from tests.support.wal import archive_command

SERVER = "pg1"
NO_SPACE = "no space left on device writing in "


def _partials(root: str) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if "partial" in f]


def test_a_full_destination_is_named_and_loses_no_wal(
    small_disk: Callable[[str], str], pgvault_bin: str
) -> None:
    disk = small_disk("12m")  # a 16 MiB segment, uncompressed, never fits
    url = f"file://{disk}/dest"
    cluster = make_cluster(archive_command=archive_command(pgvault_bin, url))
    try:
        as_postgres(
            [f"{cluster.bindir}/pgbench", "-i", "-q", "-s", "3", *cluster.conninfo_args()],
            timeout=300,
        )
        first = cluster.one("select pg_walfile_name(pg_current_wal_lsn())")
        deadline = time.monotonic() + 60
        while cluster.one("select failed_count from pg_stat_archiver") < 2:
            assert time.monotonic() < deadline, cluster.server_log()[-2000:]
            time.sleep(0.2)
        log = cluster.server_log()
        failures = [line for line in log.splitlines() if "pgvault wal-archive" in line]
        assert failures and all(
            f"error: {NO_SPACE}{disk}/dest/{SERVER}/wals/" in line for line in failures
        ), failures
        assert "file system of 12.0 MiB" in failures[0], failures[0]
        assert "Traceback" not in log and "unexpected" not in log
        assert cluster.one("select last_archived_wal from pg_stat_archiver") is None

        backup = pgvault("backup", "--immediate-checkpoint", *cluster.conninfo_args(), url, SERVER)
        assert backup.returncode == 1, backup.stderr
        assert NO_SPACE in backup.stderr and "Traceback" not in backup.stderr, backup.stderr
        listed = pgvault("backup-list", "--format", "json", url, SERVER)
        statuses = [b["status"] for b in json.loads(listed.stdout)["backups_list"]]
        assert statuses == ["FAILED"], listed.stdout
        assert _partials(disk) == []

        # Room again: every segment PostgreSQL kept is archived, and a backup is DONE.
        subprocess.run(["mount", "-o", "remount,size=512m", disk], check=True)
        cluster.wait_archived(first, timeout=120)
        done = pgvault("backup", "--immediate-checkpoint", *cluster.conninfo_args(), url, SERVER)
        assert done.returncode == 0, done.stderr
        checked = pgvault("check-wal-archive", "--gaps", url, SERVER)
        assert checked.returncode == 0, checked.stderr
        verified = pgvault("verify", url, SERVER, done.stdout.strip())
        assert verified.returncode == 0, verified.stderr

        # A restore into a full file system says the same, and nothing is called done.
        target = os.path.join(small_disk("8m"), "data")
        restored = pgvault("restore", url, SERVER, done.stdout.strip(), target)
        assert restored.returncode == 1, restored.stderr
        assert f"{NO_SPACE}{target}" in restored.stderr, restored.stderr
        assert "Traceback" not in restored.stderr and "unexpected" not in restored.stderr
    finally:
        cluster.drop()
