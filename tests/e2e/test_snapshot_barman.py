"""Snapshot backups between pgvault and barman-cloud 3.19, on moto's EC2 server.

Here the disk is attached to the moto instance as /dev/vda, the device this host's root
filesystem is mounted from, so both tools find its mount the same way, with findmnt (mount
point /, the root filesystem's options) and no override. barman-cloud-backup takes a
snapshot backup (the tap copies the cluster when barman's CreateSnapshot passes), pgvault
lists and shows it, and restores it into the copy (the recovery instance has a volume made
from barman's snapshot, at /dev/vda again, so mounted where the source disk was); PostgreSQL
starts on it and the data is compared. Then pgvault takes a snapshot backup with the same
resolution and barman-cloud-restore checks its recovery instance and fetches its
backup_label.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from tests.e2e.test_snapshot_aws import REGION, tapped  # noqa: F401 - the fixture
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.ec2 import SnapshotTap, ec2_client, make_instance, make_volume
from tests.support.emulators import Emulator
from tests.support.pitr import SERVER, make_source, start_clean
from tests.support.postgres import wait_for_recovery_end
from tests.support.restore import run_barman

DEVICE = "/dev/vda"  # this host's root filesystem (findmnt resolves it to /)


def _snapshot_of(ec2: Any, name: str) -> dict[str, Any]:
    found = ec2.describe_snapshots(Filters=[{"Name": "tag:Name", "Values": [name]}])
    return dict(found["Snapshots"][0])


def test_barman_snapshot_backup_restored_by_pgvault_and_back(
    make_dest: Any,
    pgvault_bin: str,
    emulators: dict[str, Emulator],
    tapped: SnapshotTap,  # noqa: F811
) -> None:
    if not os.path.exists(DEVICE):
        import pytest

        pytest.skip(f"{DEVICE} is not this host's disk")
    ec2 = ec2_client(emulators["s3"])
    dest: TestDestination = make_dest("s3")
    source = make_source(dest, pgvault_bin)
    cluster = source.cluster
    copies = [cluster.base + ".barman", cluster.base + ".pgvault"]
    tapped.copies.append((cluster.base, copies[0]))  # type: ignore[attr-defined]
    primary = make_instance(ec2, "pg-shared")
    make_volume(ec2, primary, DEVICE, "rootdisk")
    env = {**dest.env, "AWS_ENDPOINT_URL_EC2": tapped.endpoint}
    dest.env.update(env)  # run_barman uses the destination's environment
    disk = ["--snapshot-instance", "pg-shared", "--snapshot-disk", "rootdisk", *REGION]
    try:
        cluster.sql("create table t as select g from generate_series(1, 5000) g")
        run_barman(
            "backup",
            dest,
            *disk,
            *cluster.conninfo_args(),
            "--immediate-checkpoint",
            dest.url,
            SERVER,
        )
        listed = json.loads(
            run_barman("backup-list", dest, "--format", "json", dest.url, SERVER).stdout
        )["backups_list"]
        barman_id = listed[0]["backup_id"]
        snapshot = _snapshot_of(ec2, f"rootdisk-{barman_id.lower()}")
        # pgvault reads barman's backup.info: listed as a snapshot backup, shown with its disk.
        result = pgvault("backup-list", *dest.cli_args, dest.url, SERVER, env=env)
        assert result.returncode == 0 and barman_id in result.stdout, result.stderr
        shown = pgvault("backup-show", *dest.cli_args, dest.url, SERVER, barman_id, env=env)
        assert shown.returncode == 0, shown.stderr
        assert "snapshot" in shown.stdout and snapshot["SnapshotId"] in shown.stdout
        assert "mounted at / (" in shown.stdout

        cluster.sql("insert into t select g from generate_series(5001, 6000) g")
        source.archive_everything()
        expected = cluster.table_checksums()

        # pgvault restores barman's backup on a recovery instance holding its snapshot's volume.
        recovery = make_instance(ec2, "pg-shared-recovery")
        make_volume(ec2, recovery, DEVICE, "from-barman", snapshot_id=snapshot["SnapshotId"])
        data = os.path.join(copies[0], "data")
        done = pgvault(
            "restore",
            "--snapshot-recovery-instance",
            "pg-shared-recovery",
            *REGION,
            *dest.cli_args,
            dest.url,
            SERVER,
            barman_id,
            data,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        with open(os.path.join(data, "backup_label")) as fh:
            assert f"LABEL: Barman backup {SERVER} {barman_id}" in fh.read()
        restored = start_clean(data, cluster.bindir)
        try:
            wait_for_recovery_end(restored)
            assert restored.table_checksums() == expected
        finally:
            restored.stop("immediate")
            shutil.rmtree(restored.base, ignore_errors=True)

        # pgvault's snapshot backup, the disk found by findmnt as barman finds it...
        tapped.copies[:] = [(cluster.base, copies[1])]  # type: ignore[attr-defined]
        taken = pgvault(
            "backup", *disk, *cluster.conninfo_args(), *dest.cli_args, dest.url, SERVER, env=env
        )
        assert taken.returncode == 0, taken.stderr
        backup_id = taken.stdout.strip()
        shown_by_barman = json.loads(
            run_barman("backup-show", dest, "--format", "json", dest.url, SERVER, backup_id).stdout
        )
        info = shown_by_barman[SERVER]["snapshots_info"]
        assert info["snapshots"][0]["mount"]["mount_point"] == "/"
        ours = _snapshot_of(ec2, f"rootdisk-{backup_id.lower()}")
        # ...restored by barman-cloud-restore: it checks the recovery instance's volume and
        # mount, then fetches backup_label.
        again = make_instance(ec2, "pg-shared-again")
        make_volume(ec2, again, DEVICE, "from-pgvault", snapshot_id=ours["SnapshotId"])
        data = os.path.join(copies[1], "data")
        os.remove(os.path.join(data, "postmaster.pid"))
        run_barman(
            "restore",
            dest,
            "--snapshot-recovery-instance",
            "pg-shared-again",
            *REGION,
            dest.url,
            SERVER,
            backup_id,
            data,
        )
        with open(os.path.join(data, "backup_label")) as fh:
            assert f"pgvault backup {SERVER} {backup_id}" in fh.read()
    finally:
        for path in copies:
            shutil.rmtree(path, ignore_errors=True)
        cluster.drop()
