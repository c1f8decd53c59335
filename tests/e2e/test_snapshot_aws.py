"""Snapshot backups on AWS, end to end against moto's EC2 server (instances, volumes,
snapshots through the real EC2 query protocol) with a real PostgreSQL.

The test treats the cluster's base directory (PGDATA is base/data) as an EBS volume mounted
there (`--snapshot-mount`). moto holds no disk data, so tests.support.ec2.SnapshotTap copies
that directory at the moment pgvault's CreateSnapshot call passes through it: the copy is
the snapshot's content. For the restore, the source server is stopped, its directory moved
aside and the copy put in its place, as a volume created from the snapshot and mounted at
the same mount point on the recovery instance would be; pgvault restore checks that
instance's volumes, writes backup_label and the recovery settings; PostgreSQL replays the
WAL archive (in the same bucket) and the data is compared, rows written after the backup
included.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.ec2 import SnapshotTap, copy_volume, ec2_client, make_instance, make_volume
from tests.support.emulators import Emulator, free_port
from tests.support.pitr import (
    SERVER,
    check_snapshot_recovery,
    make_source,
    pgbench_running,
)
from tests.support.restore import barman_bin, run_barman

REGION = ["--aws-region", "us-east-1"]


@pytest.fixture
def ec2(emulators: dict[str, Emulator]) -> Any:
    return ec2_client(emulators["s3"])


@pytest.fixture
def tapped(emulators: dict[str, Emulator], tmp_path: Any) -> Iterator[SnapshotTap]:
    """A tap whose copy source and target the test sets (tap.copies: (source, target))."""
    copies: list[tuple[str, str]] = []

    def on_snapshot(_: bytes) -> None:
        for source, target in copies:
            copy_volume(source, target)

    tap = SnapshotTap(emulators["s3"], on_snapshot).start()
    tap.copies = copies  # type: ignore[attr-defined]
    yield tap
    tap.stop()


def _show(dest: TestDestination, backup_id: str, env: dict[str, str]) -> str:
    result = pgvault("backup-show", *dest.cli_args, dest.url, SERVER, backup_id, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def barman_info(dest: TestDestination, backup_id: str) -> dict[str, Any]:
    """backup.info as barman's own infofile code loads it (the snapshots_info object too)."""
    store = dest.store()
    with store:
        raw = store.get_bytes(f"{SERVER}/base/{backup_id}/backup.info")
    python = os.path.join(os.path.dirname(barman_bin("barman-cloud-backup")), "python")
    code = (
        "import sys, io\n"
        "import barman.output  # noqa: F401 (breaks barman's import cycle)\n"
        "from barman.infofile import BackupInfo\n"
        "info = BackupInfo(backup_id=sys.argv[1])\n"
        "info.load(file_object=io.BytesIO(sys.stdin.buffer.read()))\n"
        "print(repr(info.snapshots_info.to_dict()))\n"
        "print(type(info.snapshots_info).__name__, info.status)\n"
    )
    done = subprocess.run(
        [python, "-c", code, backup_id], input=raw, capture_output=True, check=True
    )
    lines = done.stdout.decode().splitlines()
    return {"snapshots_info": ast.literal_eval(lines[0]), "type": lines[1]}


def test_snapshot_backup_restored_and_compared(
    make_dest: Any, pgvault_bin: str, ec2: Any, tapped: SnapshotTap
) -> None:
    dest: TestDestination = make_dest("s3")
    source = make_source(dest, pgvault_bin)
    cluster = source.cluster
    volume_dir = cluster.base  # the "volume", mounted at base; PGDATA is base/data
    copy = volume_dir + ".snapshot"
    aside = volume_dir + ".source"
    primary = make_instance(ec2, "pg-primary")
    make_volume(ec2, primary, "/dev/sdf", "pgdata")
    tapped.copies.append((volume_dir, copy))  # type: ignore[attr-defined]
    env = {**dest.env, "AWS_ENDPOINT_URL_EC2": tapped.endpoint}
    try:
        cluster.sql("insert into marks select g, 'before' from generate_series(1, 30) g")
        with pgbench_running(cluster):
            result = pgvault(
                "backup",
                "-v",
                "--immediate-checkpoint",
                "--snapshot-instance",
                "pg-primary",
                "--snapshot-disk",
                "pgdata",
                "--snapshot-mount",
                f"pgdata={volume_dir}",
                *REGION,
                *cluster.conninfo_args(),
                *dest.cli_args,
                dest.url,
                SERVER,
                env=env,
            )
        assert result.returncode == 0, result.stderr
        backup_id = result.stdout.strip()
        assert f"snapshot backup {backup_id}: disk snapshots completed" in result.stderr
        assert len(tapped.snapshots) == 1 and os.path.isdir(os.path.join(copy, "data"))

        # Only metadata went to the bucket: backup.info, backup_label, pgvault.json.
        with dest.store() as store:
            keys = sorted(o.key.rsplit("/", 1)[1] for o in store.list_objects(f"{SERVER}/base/"))
        assert keys == ["backup.info", "backup_label", "pgvault.json"]
        snapshot = ec2.describe_snapshots(
            Filters=[{"Name": "tag:Name", "Values": [f"pgdata-{backup_id.lower()}"]}]
        )["Snapshots"][0]
        assert snapshot["State"] == "completed"

        # barman's own code reads snapshots_info into its AWS class, field for field.
        read = barman_info(dest, backup_id)
        assert read["type"] == "AwsSnapshotsInfo DONE"
        info = read["snapshots_info"]
        assert info["provider"] == "aws"
        assert info["provider_info"] == {"account_id": snapshot["OwnerId"], "region": "us-east-1"}
        [disk] = info["snapshots"]
        assert disk["mount"]["mount_point"] == volume_dir
        assert disk["mount"]["mount_options"]
        assert disk["provider"] == {
            "device_name": "/dev/sdf",
            "snapshot_id": snapshot["SnapshotId"],
            "snapshot_name": f"pgdata-{backup_id.lower()}",
            "snapshot_lock_mode": None,
        }
        # barman-cloud-backup-list and -show read it.
        listed = run_barman("backup-list", dest, dest.url, SERVER).stdout
        assert backup_id in listed
        shown = run_barman("backup-show", dest, dest.url, SERVER, backup_id).stdout
        assert snapshot["SnapshotId"] in shown and volume_dir in shown
        assert snapshot["SnapshotId"] in _show(dest, backup_id, env)

        cluster.sql("insert into marks select g, 'after' from generate_series(31, 60) g")
        source.archive_everything()
        expected = cluster.table_checksums()
        assert len(expected) >= 5
        cluster.stop()

        # The recovery instance: a volume created from the snapshot, mounted where the
        # source disk was (the copy moved into the mount point).
        recovery = make_instance(ec2, "pg-recovery")
        make_volume(ec2, recovery, "/dev/sdg", "restored", snapshot_id=snapshot["SnapshotId"])
        os.rename(volume_dir, aside)
        os.rename(copy, volume_dir)
        restore = [
            "restore",
            "--snapshot-recovery-instance",
            "pg-recovery",
            *REGION,
            *dest.cli_args,
            dest.url,
            SERVER,
            backup_id,
            cluster.data,
        ]
        # Mounted elsewhere: refused, naming the volume and both mount points.
        wrong = pgvault(*restore, "--snapshot-mount", f"restored={aside}", env=env)
        assert wrong.returncode == 1, wrong.stderr
        assert f"mounted at {aside} but {volume_dir} was expected" in wrong.stderr
        assert not os.path.exists(os.path.join(cluster.data, "backup_label"))

        done = pgvault(*restore, "--snapshot-mount", f"restored={volume_dir}", env=env)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        log = check_snapshot_recovery(cluster.data, cluster.bindir, backup_id, expected)
        assert "redo starts" in log
    finally:
        for path in (copy, aside):
            shutil.rmtree(path, ignore_errors=True)
        source.cluster.drop()


def test_missing_cloud_resources_and_bad_combinations(
    make_dest: Any, pg: Any, ec2: Any, emulators: dict[str, Emulator], tmp_path: Any
) -> None:
    """Exit 1 naming the missing instance, disk or volume, with nothing recorded; exit 3 for
    what cannot be combined; one line each, no traceback."""
    dest: TestDestination = make_dest("s3")
    env = {**dest.env, "AWS_ENDPOINT_URL_EC2": emulators["s3"].endpoint}
    instance = make_instance(ec2, "pg-lonely")
    volume = make_volume(ec2, instance, "/dev/sdf", "attached")
    base = [*pg.conninfo_args(), *REGION, *dest.cli_args]

    def backup(*flags: str) -> subprocess.CompletedProcess[str]:
        result = pgvault("backup", *base, *flags, dest.url, SERVER, env=env)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        return result

    cases = [
        (["--snapshot-instance", "no-such-vm", "--snapshot-disk", "attached"], 1, "no-such-vm"),
        (["--snapshot-instance", "i-0123456789abcdef0", "--snapshot-disk", "x"], 1, "i-0123"),
        (["--snapshot-instance", "pg-lonely", "--snapshot-disk", "elsewhere"], 1, "elsewhere"),
        # attached, but its device name (/dev/sdf) is mounted nowhere on this host
        (["--snapshot-instance", "pg-lonely", "--snapshot-disk", "attached"], 1, "not mounted"),
        # mounted somewhere that does not hold the data directory
        (
            [
                *("--snapshot-instance", "pg-lonely", "--snapshot-disk", "attached"),
                *("--snapshot-mount", f"attached={tmp_path}"),
            ],
            3,
            "on none of the snapshotted disks",
        ),
        (["--snapshot-instance", "pg-lonely", "--snapshot-disk", "attached", "--gzip"], 3, "compr"),
        (
            ["--snapshot-instance", "pg-lonely", "--aws-await-snapshots-timeout", "0"],
            3,
            "at least 1",
        ),
    ]
    for flags, code, named in cases:
        result = backup(*flags)
        assert result.returncode == code, (flags, result.stderr)
        assert named in result.stderr, (flags, result.stderr)
    dead = {**env, "AWS_ENDPOINT_URL_EC2": f"http://127.0.0.1:{free_port()}"}
    unreachable = pgvault(
        "backup",
        *base,
        "--snapshot-instance",
        "pg-lonely",
        "--snapshot-disk",
        "attached",
        dest.url,
        SERVER,
        env=dead,
    )
    assert unreachable.returncode == 2 and "cannot reach the EC2 endpoint" in unreachable.stderr
    with dest.store() as store:
        assert list(store.list_objects(f"{SERVER}/")) == []  # nothing recorded
    taken = ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [volume]}])
    assert taken["Snapshots"] == []

    # A snapshot backup of a cluster whose data directory is on the "disk"; this cluster does
    # not archive WAL, so the backup refuses unless told the WAL is kept elsewhere.
    good = ["--snapshot-instance", "pg-lonely", "--snapshot-disk", "attached"]
    good += ["--snapshot-mount", f"attached={os.path.dirname(pg.data)}"]
    refused = backup(*good)
    assert refused.returncode == 1 and "WAL archiving is off" in refused.stderr
    done = backup(*good, "--no-wal-check")
    assert done.returncode == 0, done.stderr
    backup_id = done.stdout.strip()
    target = str(tmp_path / "restored")
    restore = [*dest.cli_args, dest.url, SERVER, backup_id, target]
    # Restored as archives: refused, it has none.
    plain = pgvault("restore", *restore, env=env)
    assert plain.returncode == 3 and "--snapshot-recovery-instance" in plain.stderr
    # The recovery instance has no volume made from the snapshot: exit 1, naming it.
    recovery = ["--snapshot-recovery-instance", "pg-lonely", *REGION]
    missing = pgvault("restore", *recovery, *restore, env=env)
    assert missing.returncode == 1, missing.stderr
    assert "no volume created from snapshot snap-" in missing.stderr
    unknown = pgvault("restore", "--snapshot-recovery-instance", "gone", *REGION, *restore, env=env)
    assert unknown.returncode == 1 and "gone" in unknown.stderr
    assert not os.path.exists(target)

    verified = pgvault("verify", *dest.cli_args, dest.url, SERVER, backup_id, env=env)
    assert verified.returncode == 3 and "snapshot backup" in verified.stderr, verified.stderr

    # backup-delete removes its EBS snapshot first, as barman-cloud-backup-delete does.
    [snapshot] = ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [volume]}])[
        "Snapshots"
    ]
    deleted = pgvault("backup-delete", *dest.cli_args, "-b", backup_id, dest.url, SERVER, env=env)
    assert deleted.returncode == 0, deleted.stderr
    taken = ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [volume]}])
    assert taken["Snapshots"] == [], snapshot["SnapshotId"]
    with dest.store() as store:
        assert list(store.list_objects(f"{SERVER}/base/")) == []
