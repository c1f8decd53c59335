"""The demo made anew: `--demo-stop` keeps the backups, and the next demo is a new cluster
whose WAL has the same segment names. Its predecessor's backups and WAL move to a server of
their own, still restorable, and the new cluster archives and backs up under `demo`."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.support.cli import pgvault
from tests.support.pitr import new_target, restored_server
from tests.support.postgres import Cluster, wait_for_recovery_end


def demo(world: dict[str, str], *args: str) -> dict[str, Any]:
    result = pgvault("demo", *args, "--format", "json", env=world, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def backup(world: dict[str, str], cluster: dict[str, Any]) -> str:
    """An unthrottled backup of the demo cluster; its ID (DONE only once its WAL is stored)."""
    connection = ["-h", cluster["socket_dir"], "-p", str(cluster["port"]), "-U", "postgres"]
    result = pgvault(
        "backup", "--immediate-checkpoint", *connection, cluster["destination"], "demo",
        env=world, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def listed(world: dict[str, str], destination: str, server: str) -> dict[str, str]:
    result = pgvault("backup-list", "--format", "json", destination, server, env=world)
    assert result.returncode == 0, result.stderr
    return {b["backup_id"]: b["status"] for b in json.loads(result.stdout)["backups_list"]}


def test_a_new_demo_archives_beside_the_earlier_demos_backups(demo_world: dict[str, str]) -> None:
    first = demo(demo_world, "start", "--no-backup")
    assert first["created"] and first["archiving"], first
    source = Cluster(
        base=first["base"], data=first["data"], sock=first["socket_dir"],
        port=first["port"], bindir=first["bindir"],
    )  # fmt: skip
    earlier_id = backup(demo_world, first)
    earlier_shop = source.table_checksums("shop")
    demo(demo_world, "stop")

    second = demo(demo_world, "start", "--no-backup")
    assert second["created"] and second["destination"] == first["destination"]
    # The new cluster's WAL is archived under `demo`: a backup of it becomes DONE (it used
    # to wait for ever, archive_command refusing segment 1 as "different content").
    new_id = backup(demo_world, second)
    assert listed(demo_world, second["destination"], "demo") == {new_id: "DONE"}
    now = Cluster(
        base=second["base"], data=second["data"], sock=second["socket_dir"],
        port=second["port"], bindir=second["bindir"],
    )  # fmt: skip
    assert now.one("SELECT failed_count FROM pg_stat_archiver") == 0

    # The earlier cluster's backup, under its new server name, restores with its own WAL.
    root = second["destination"].removeprefix("file://")
    (retired,) = [name for name in os.listdir(root) if name.startswith("demo-until-")]
    assert listed(demo_world, second["destination"], retired) == {earlier_id: "DONE"}
    target = new_target()
    try:
        restored = pgvault(
            "restore", second["destination"], retired, earlier_id, target.data,
            env=demo_world, timeout=600,
        )  # fmt: skip
        assert restored.returncode == 0, restored.stderr
        with restored_server(target, first["bindir"]) as server:
            wait_for_recovery_end(server)
            assert server.table_checksums("shop") == earlier_shop
    finally:
        target.drop()
