"""Snapshot backups on Azure, end to end through azure-mgmt-compute against tests.support.arm,
a local server speaking the Azure Resource Manager REST subset the SDK calls (over TLS, with
a bearer token), with a real PostgreSQL and the backup metadata in an S3 bucket (moto).

As in test_snapshot_aws and _gcp, the cluster's base directory is the "disk"
(`--snapshot-mount`), copied at the moment the snapshot PUT reaches the server; the copy
is put in place of the source for the restore, as a disk created from the snapshot and
mounted at the same point on the recovery VM would be. What this proves: pgvault drives the
official SDK through the documented calls and records what barman-cloud records; not the
real service.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_snapshot_aws import barman_info
from tests.support.arm import TOKEN, ArmServer
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.ec2 import copy_volume
from tests.support.emulators import free_port
from tests.support.pitr import (
    SERVER,
    check_snapshot_recovery,
    make_source,
    pgbench_running,
)
from tests.support.restore import run_barman

SUB = "11111111-2222-3333-4444-555555555555"
GROUP = "pg-group"
LOCATION = "westeurope"
AZ = ["--azure-subscription-id", SUB, "--azure-resource-group", GROUP]
OPS = f"/subscriptions/{SUB}/resourceGroups/{GROUP}/providers/Microsoft.Compute"


@pytest.fixture
def arm() -> Iterator[ArmServer]:
    """The server; `arm.copies` lists (source, target) directories copied on each insert."""
    copies: list[tuple[str, str]] = []

    def on_snapshot(_name: str, _disk: str) -> None:
        for source, target in copies:
            copy_volume(source, target)

    server = ArmServer(on_snapshot=on_snapshot).start()
    server.copies = copies  # type: ignore[attr-defined]
    yield server
    server.stop()


def _env(dest: TestDestination, arm: ArmServer) -> dict[str, str]:
    return {
        **dest.env,
        "PGVAULT_AZURE_COMPUTE_ENDPOINT": arm.endpoint,
        "PGVAULT_AZURE_COMPUTE_TOKEN": TOKEN,
        "REQUESTS_CA_BUNDLE": arm.ca_file,  # the server's own CA, trusted by azure-core
    }


def test_azure_snapshot_backup_restored_and_compared(
    make_dest: Any, pgvault_bin: str, arm: ArmServer
) -> None:
    dest: TestDestination = make_dest("s3")
    source = make_source(dest, pgvault_bin)
    cluster = source.cluster
    volume_dir = cluster.base  # the "disk", mounted at base; PGDATA is base/data
    copy = volume_dir + ".snapshot"
    aside = volume_dir + ".source"
    arm.add_vm(SUB, GROUP, "pg-primary", LOCATION, ["pgdata"])
    arm.copies.append((volume_dir, copy))  # type: ignore[attr-defined]
    env = _env(dest, arm)
    try:
        cluster.sql("insert into marks select g, 'before' from generate_series(1, 30) g")
        with pgbench_running(cluster):
            result = pgvault(
                "backup",
                "-v",
                "--immediate-checkpoint",
                *("--snapshot-instance", "pg-primary", "--snapshot-disk", "pgdata"),
                *("--snapshot-mount", f"pgdata={volume_dir}"),
                *AZ,
                *cluster.conninfo_args(),
                *dest.cli_args,
                dest.url,
                SERVER,
                env=env,
            )
        assert result.returncode == 0, result.stderr
        backup_id = result.stdout.strip()
        name = f"pgdata-{backup_id.lower()}"
        assert os.path.isdir(os.path.join(copy, "data"))
        snapshot = arm.snapshots()[name]
        # awaited: it was Creating until its operation succeeded
        assert snapshot["properties"]["provisioningState"] == "Succeeded"
        assert snapshot["properties"]["incremental"] is True
        source_id = snapshot["properties"]["creationData"]["sourceResourceId"]
        assert source_id == f"{OPS}/disks/pgdata"
        assert ("PUT", f"{OPS}/snapshots/{name}") in arm.requests

        with dest.store() as store:
            keys = sorted(o.key.rsplit("/", 1)[1] for o in store.list_objects(f"{SERVER}/base/"))
        assert keys == ["backup.info", "backup_label", "pgvault.json"]

        # barman's own code reads snapshots_info into its Azure class, field for field.
        read = barman_info(dest, backup_id)
        assert read["type"] == "AzureSnapshotsInfo DONE"
        info = read["snapshots_info"]
        assert info["provider"] == "azure"
        assert info["provider_info"] == {"subscription_id": SUB, "resource_group": GROUP}
        [disk] = info["snapshots"]
        assert disk["mount"]["mount_point"] == volume_dir
        assert disk["mount"]["mount_options"]
        assert disk["provider"] == {"location": LOCATION, "lun": 0, "snapshot_name": name}
        # barman-cloud-backup-list and -show read it; so do pgvault's.
        assert backup_id in run_barman("backup-list", dest, dest.url, SERVER).stdout
        shown = run_barman("backup-show", dest, dest.url, SERVER, backup_id).stdout
        assert name in shown and volume_dir in shown and GROUP in shown
        listed = pgvault("backup-list", *dest.cli_args, dest.url, SERVER, env=env)
        assert listed.returncode == 0 and backup_id in listed.stdout, listed.stderr
        ours = pgvault("backup-show", *dest.cli_args, dest.url, SERVER, backup_id, env=env)
        assert ours.returncode == 0 and name in ours.stdout and "snapshot" in ours.stdout

        cluster.sql("insert into marks select g, 'after' from generate_series(31, 60) g")
        source.archive_everything()
        expected = cluster.table_checksums()
        assert len(expected) >= 5
        cluster.stop()

        # The recovery instance: a disk created from the snapshot, attached and mounted where
        # the source disk was (the copy moved into the mount point).
        arm.add_disk(SUB, GROUP, "restored", LOCATION, source_snapshot=name)
        arm.add_vm(SUB, GROUP, "pg-recovery", LOCATION, ["other", "restored"])
        os.rename(volume_dir, aside)
        os.rename(copy, volume_dir)
        restore = [
            "restore",
            *("--snapshot-recovery-instance", "pg-recovery"),
            *dest.cli_args,
            dest.url,
            SERVER,
            backup_id,
            cluster.data,
        ]
        # barman-cloud-restore needs the recovery VM's resource group: so does pgvault.
        nogroup = pgvault(*restore, env=env)
        assert nogroup.returncode == 3, nogroup.stderr
        assert "--azure-resource-group" in nogroup.stderr
        wrong = pgvault(
            *restore,
            *("--azure-resource-group", GROUP, "--snapshot-mount", f"restored={aside}"),
            env=env,
        )
        assert wrong.returncode == 1, wrong.stderr
        assert f"mounted at {aside} but {volume_dir} was expected" in wrong.stderr
        assert not os.path.exists(os.path.join(cluster.data, "backup_label"))

        done = pgvault(
            *restore,
            *("--azure-resource-group", GROUP, "--snapshot-mount", f"restored={volume_dir}"),
            env=env,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        check_snapshot_recovery(cluster.data, cluster.bindir, backup_id, expected)
    finally:
        for path in (copy, aside):
            shutil.rmtree(path, ignore_errors=True)
        source.cluster.drop()


def test_azure_missing_resources_bad_input_and_delete(
    make_dest: Any, pg: Any, arm: ArmServer, tmp_path: Any
) -> None:
    """Exit 1 naming the missing project, instance or disk, with nothing recorded; exit 3 for
    what cannot be combined; one line each, no traceback. backup-delete deletes the
    snapshot first, as barman-cloud-backup-delete does."""
    dest: TestDestination = make_dest("s3")
    env = _env(dest, arm)
    arm.add_vm(SUB, GROUP, "pg-lonely", LOCATION, ["attached"])
    arm.add_disk(SUB, GROUP, "loose", LOCATION)
    base = [*pg.conninfo_args(), *dest.cli_args]
    good = ["--snapshot-instance", "pg-lonely", "--snapshot-disk", "attached"]

    def backup(*flags: str, environ: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        result = pgvault("backup", *base, *flags, dest.url, SERVER, env=environ)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        return result

    cases = [
        (["--snapshot-instance", "no-such-vm", "--snapshot-disk", "x", *AZ], 1, "no-such-vm"),
        (
            [*good, "--azure-subscription-id", "no-such-sub", "--azure-resource-group", GROUP],
            1,
            "subscription no-such-sub",
        ),
        (
            [*good, "--azure-subscription-id", SUB, "--azure-resource-group", "no-such-rg"],
            1,
            "resource group no-such-rg",
        ),
        (["--snapshot-instance", "pg-lonely", "--snapshot-disk", "loose", *AZ], 1, "loose"),
        # attached, but /dev/disk/azure/scsi1/lun0 is mounted nowhere here
        ([*good, *AZ], 1, "not mounted"),
        ([*good, "--azure-subscription-id", SUB], 3, "--azure-resource-group"),
        ([*good, "--azure-resource-group", GROUP], 3, "--azure-subscription-id"),
        ([*good, *AZ, "--gcp-zone", "europe-west1-b"], 3, "two clouds"),
        ([*good, *AZ, "--gzip"], 3, "compr"),
        ([*good, *AZ, "--snapshot-mount", f"attached={tmp_path}"], 3, "on none of the"),
    ]
    for flags, code, named in cases:
        result = backup(*flags)
        assert result.returncode == code, (flags, result.stderr)
        assert named in result.stderr, (flags, result.stderr)
    dead = {**env, "PGVAULT_AZURE_COMPUTE_ENDPOINT": f"https://127.0.0.1:{free_port()}"}
    unreachable = backup(*good, *AZ, environ=dead)
    assert unreachable.returncode == 2, unreachable.stderr
    assert "cannot reach the Azure Resource Manager endpoint" in unreachable.stderr
    denied = backup(*good, *AZ, environ={**env, "PGVAULT_AZURE_COMPUTE_TOKEN": "stale"})
    assert denied.returncode == 2, denied.stderr  # credentials refused, as for stores
    assert "access denied" in denied.stderr and "stale" not in denied.stderr
    with dest.store() as store:
        assert list(store.list_objects(f"{SERVER}/")) == []  # nothing recorded
    assert arm.snapshots() == {}

    # A snapshot backup of a cluster whose data directory is on the "disk" (no archiving
    # here, so --no-wal-check), then the recovery checks and the deletion.
    mounted = ["--snapshot-mount", f"attached={os.path.dirname(pg.data)}"]
    done = backup(*good, *AZ, *mounted, "--tags", "team,db", "--no-wal-check")
    assert done.returncode == 0, done.stderr
    backup_id = done.stdout.strip()
    name = f"attached-{backup_id.lower()}"
    assert arm.snapshots()[name]["tags"] == {"team": "db"}
    target = str(tmp_path / "restored")
    restore = [*dest.cli_args, dest.url, SERVER, backup_id, target]
    recovery = ["--snapshot-recovery-instance", "pg-lonely", "--azure-resource-group", GROUP]
    missing = pgvault("restore", *recovery, *restore, env=env)
    assert missing.returncode == 1, missing.stderr
    assert f"no volume created from snapshot {name}" in missing.stderr
    gone = ["--snapshot-recovery-instance", "gone", "--azure-resource-group", GROUP]
    unknown = pgvault("restore", *gone, *restore, env=env)
    assert unknown.returncode == 1 and "Azure VM gone" in unknown.stderr, unknown.stderr
    aws = pgvault("restore", *recovery, "--aws-region", "us-east-1", *restore, env=env)
    assert aws.returncode == 3, aws.stderr
    assert not os.path.exists(target)

    deleted = pgvault("backup-delete", *dest.cli_args, "-b", backup_id, dest.url, SERVER, env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert arm.snapshots() == {}
    assert ("DELETE", f"{OPS}/snapshots/{name}") in arm.requests
    with dest.store() as store:
        assert list(store.list_objects(f"{SERVER}/base/")) == []
