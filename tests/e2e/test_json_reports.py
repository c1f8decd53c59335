"""`--format json` of verify, check-wal-archive, backup-delete and restore, on real backups:
each document parses, has the README's keys, and says what the store and the disk hold."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from typing import Any

from core.postgres.walnames import segment_range
from tests.support.catalog import (
    SERVER,
    ArchivedServer,
    archived_server,
    object_keys,
    wal_key,
    wal_names,
)
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster, start_restored, world_dir

VERIFY_KEYS = {
    "backup_id",
    "server",
    "written_by",
    "objects",
    "bytes_read",
    "checked",
    "not_checked",
    "drill",
    "summary",
}
CHECK_KEYS = {"server", "check", "ok", "error", "timeline", "wal_files", "backups", "gaps"}
COVERAGE_KEYS = {
    "backup_id",
    "timeline",
    "begin_wal",
    "end_wal",
    "ok",
    "missing",
    "gaps_after",
    "recoverable_until",
}
DELETE_KEYS = {"server", "dry_run", "policy", "now", "statuses", "deleted", "skipped"}
DELETED_KEYS = {
    "backup_id",
    "status",
    "why",
    "objects",
    "size",
    "wal_count",
    "wal_runs",
    "wal_reason",
}
RESTORE_KEYS = {
    "backup_id",
    "recovery_dir",
    "tablespaces",
    "files",
    "bytes_written",
    "bytes_downloaded",
    "target",
    "credentials_file",
    "wal_restore_dir",
    "warnings",
    "summary",
    "report",
}


def document(result: subprocess.CompletedProcess[str], code: int = 0) -> Any:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def _sizes(dest: TestDestination, prefix: str) -> dict[str, int]:
    with dest.store() as store:
        return {o.key: o.size for o in store.list_objects(prefix)}


def test_json_reports_say_what_the_store_holds(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
) -> None:
    dest = make_dest("file")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    server.cluster.sql("create table t(id int); insert into t select generate_series(1, 5000)")
    first = server.backup("--gzip")
    server.write_wal(1)
    second = server.backup()
    server.write_wal(1)
    _verify(server, dest, first)
    _check_wal_archive(server, dest, [first, second])
    _delete(server, dest, first, second)
    _restore(server, dest, second)


def _verify(server: ArchivedServer, dest: TestDestination, backup_id: str) -> None:
    """Every object of the backup is read, and the WAL from its begin to its end."""
    verified = document(server.run("verify", backup_id, "--format", "json"))
    assert set(verified) == VERIFY_KEYS
    assert (verified["backup_id"], verified["server"]) == (backup_id, SERVER)
    assert verified["written_by"] == "pgvault"
    stored = _sizes(dest, f"{SERVER}/base/{backup_id}/")
    info = server.info(backup_id)
    wal_sizes = _sizes(dest, f"{SERVER}/wals/")
    needed = [wal_key(dest, name) for name in segment_range(info.begin_wal, info.end_wal)]
    assert verified["objects"] == len(stored) + len(needed)
    assert verified["bytes_read"] == sum(stored.values()) + sum(wal_sizes[k] for k in needed)
    assert verified["checked"] and verified["drill"] == []


def _check_wal_archive(server: ArchivedServer, dest: TestDestination, backups: list[str]) -> None:
    """barman-cloud's check fails on a used archive, and says so in JSON; the gap check."""
    used = document(server.run("check-wal-archive", "--format", "json"), code=1)
    assert set(used) == CHECK_KEYS
    assert (used["check"], used["ok"], used["wal_files"]) == ("usable", False, len(wal_names(dest)))
    assert "expected an empty WAL archive" in used["error"] and used["backups"] == []
    newer = document(server.run("check-wal-archive", "--timeline", "2", "--format", "json"))
    assert (newer["ok"], newer["error"], newer["timeline"]) == (True, None, 2)

    gaps = document(server.run("check-wal-archive", "--gaps", "--format", "json"))
    assert (gaps["check"], gaps["ok"], gaps["error"]) == ("gaps", True, None)
    assert set(gaps) == CHECK_KEYS and gaps["gaps"] == []
    assert [b["backup_id"] for b in gaps["backups"]] == backups
    for item in gaps["backups"]:
        assert set(item) == COVERAGE_KEYS
        info = server.info(item["backup_id"])
        assert (item["begin_wal"], item["end_wal"]) == (info.begin_wal, info.end_wal)
        assert item["timeline"] == info.timeline and item["missing"] == []
        assert item["ok"] is True


def _delete(server: ArchivedServer, dest: TestDestination, first: str, second: str) -> None:
    """A dry run names exactly the objects of the backup and deletes none; a policy run."""
    stored = _sizes(dest, f"{SERVER}/base/{first}/")
    dry = document(server.run("backup-delete", "-b", first, "--dry-run", "--format", "json"))
    assert set(dry) == DELETE_KEYS and dry["dry_run"] is True and dry["policy"] is None
    (planned,) = dry["deleted"]
    assert set(planned) == DELETED_KEYS and planned["backup_id"] == first
    assert set(planned["objects"]) == set(stored)
    assert planned["size"] == sum(stored.values())
    assert object_keys(dest, f"{SERVER}/base/{first}/") == set(stored)

    archived = wal_names(dest)
    by_policy = document(server.run("backup-delete", "-r", "REDUNDANCY 1", "--format", "json"))
    assert (by_policy["policy"], by_policy["dry_run"]) == ("REDUNDANCY 1", False)
    assert dict(map(tuple, by_policy["statuses"])) == {first: "OBSOLETE", second: "VALID"}
    assert [d["backup_id"] for d in by_policy["deleted"]] == [first]
    assert object_keys(dest, f"{SERVER}/base/{first}/") == set()
    assert by_policy["deleted"][0]["wal_count"] == len(archived - wal_names(dest))


def _restore(server: ArchivedServer, dest: TestDestination, backup_id: str) -> None:
    """The directory it reports holds the files and bytes it reports, and starts."""
    target = os.path.join(world_dir("pgvault-json-restore-"), "data")
    restored = document(server.run("restore", backup_id, target, "--format", "json"))
    assert set(restored) == RESTORE_KEYS
    assert (restored["backup_id"], restored["recovery_dir"]) == (backup_id, target)
    on_disk = [
        os.path.join(root, name)
        for root, _, names in os.walk(target)
        for name in names
        if not os.path.islink(os.path.join(root, name))
    ]
    with dest.store() as store:
        manifest = store.get_bytes(f"{SERVER}/base/{backup_id}/pgvault.json")
    recorded = json.loads(manifest)["files"]
    # every file pgvault.json records, and the few restore writes itself (recovery.signal...)
    assert restored["files"] == len(recorded) < len(on_disk)
    assert restored["bytes_written"] == sum(f["size"] for f in recorded)
    assert {os.path.relpath(p, target) for p in on_disk} >= {f["path"] for f in recorded}
    archives = _sizes(dest, f"{SERVER}/base/{backup_id}/")
    assert restored["bytes_downloaded"] == sum(v for k, v in archives.items() if ".tar" in k)
    assert os.path.isdir(restored["wal_restore_dir"])
    started = start_restored(target, server.cluster.bindir, env=dest.env)
    try:
        assert started.one("select count(*) from t") == 5000
    finally:
        started.stop()
