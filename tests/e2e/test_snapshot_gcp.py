"""Snapshot backups on GCP, end to end through google-cloud-compute (REST transport) against
tests.support.gce, a local server speaking the Compute Engine REST subset the SDK calls,
with a real PostgreSQL and the backup metadata in a GCS bucket (fake-gcs-server).

As in test_snapshot_aws, the cluster's base directory is the "disk" (`--snapshot-mount`),
copied at the moment the snapshot insert reaches the server; the copy is put in place of
the source for the restore, as a disk created from the snapshot and mounted at the same
point on the recovery instance would be. What this proves: pgvault drives the official SDK
through the documented calls and records what barman-cloud records; not the real service.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_snapshot_aws import barman_info
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.ec2 import copy_volume
from tests.support.emulators import free_port
from tests.support.gce import GceServer
from tests.support.pitr import (
    SERVER,
    check_snapshot_recovery,
    make_source,
    pgbench_running,
)
from tests.support.restore import run_barman

PROJECT = "pg-project"
ZONE = "europe-west1-b"
GCP = ["--gcp-project", PROJECT, "--gcp-zone", ZONE]


@pytest.fixture
def gce() -> Iterator[GceServer]:
    """The server; `gce.copies` lists (source, target) directories copied on each insert."""
    copies: list[tuple[str, str]] = []

    def on_snapshot(_name: str, _disk: str) -> None:
        for source, target in copies:
            copy_volume(source, target)

    server = GceServer(on_snapshot=on_snapshot).start()
    server.copies = copies  # type: ignore[attr-defined]
    yield server
    server.stop()


def _env(dest: TestDestination, gce: GceServer) -> dict[str, str]:
    return {**dest.env, "PGVAULT_GCP_COMPUTE_ENDPOINT": gce.endpoint}


def test_gcp_snapshot_backup_restored_and_compared(
    make_dest: Any, pgvault_bin: str, gce: GceServer
) -> None:
    dest: TestDestination = make_dest("gcs")
    source = make_source(dest, pgvault_bin)
    cluster = source.cluster
    volume_dir = cluster.base  # the "disk", mounted at base; PGDATA is base/data
    copy = volume_dir + ".snapshot"
    aside = volume_dir + ".source"
    gce.add_instance(PROJECT, ZONE, "pg-primary", [("pgdata", "pgdata-device")])
    gce.copies.append((volume_dir, copy))  # type: ignore[attr-defined]
    env = _env(dest, gce)
    try:
        cluster.sql("insert into marks select g, 'before' from generate_series(1, 30) g")
        with pgbench_running(cluster):
            result = pgvault(
                "backup",
                "-v",
                "--immediate-checkpoint",
                *("--snapshot-instance", "pg-primary", "--snapshot-disk", "pgdata"),
                *("--snapshot-mount", f"pgdata={volume_dir}"),
                *GCP,
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
        snapshot = gce.snapshots[(PROJECT, name)]
        assert snapshot["status"] == "READY"  # awaited: it was CREATING, then UPLOADING
        assert snapshot["sourceDisk"].endswith(f"projects/{PROJECT}/zones/{ZONE}/disks/pgdata")
        assert ("POST", f"/compute/v1/projects/{PROJECT}/global/snapshots") in gce.requests

        with dest.store() as store:
            keys = sorted(o.key.rsplit("/", 1)[1] for o in store.list_objects(f"{SERVER}/base/"))
        assert keys == ["backup.info", "backup_label", "pgvault.json"]

        # barman's own code reads snapshots_info into its GCP class, field for field.
        read = barman_info(dest, backup_id)
        assert read["type"] == "GcpSnapshotsInfo DONE"
        info = read["snapshots_info"]
        assert info["provider"] == "gcp"
        assert info["provider_info"] == {"project": PROJECT}
        [disk] = info["snapshots"]
        assert disk["mount"]["mount_point"] == volume_dir
        assert disk["mount"]["mount_options"]
        assert disk["provider"] == {
            "device_name": "pgdata-device",
            "snapshot_name": name,
            "snapshot_project": PROJECT,
        }
        # barman-cloud-backup-list and -show read it; so do pgvault's.
        assert backup_id in run_barman("backup-list", dest, dest.url, SERVER).stdout
        shown = run_barman("backup-show", dest, dest.url, SERVER, backup_id).stdout
        assert name in shown and volume_dir in shown and PROJECT in shown
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
        gce.add_disk(PROJECT, ZONE, "restored", source_snapshot=name)
        gce.add_instance(PROJECT, ZONE, "pg-recovery", [("restored", "restored-device")])
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
        # barman-cloud-restore needs the zone of the recovery instance: so does pgvault.
        nozone = pgvault(*restore, env=env)
        assert nozone.returncode == 3 and "--gcp-zone" in nozone.stderr, nozone.stderr
        wrong = pgvault(
            *restore, "--gcp-zone", ZONE, "--snapshot-mount", f"restored={aside}", env=env
        )
        assert wrong.returncode == 1, wrong.stderr
        assert f"mounted at {aside} but {volume_dir} was expected" in wrong.stderr
        assert not os.path.exists(os.path.join(cluster.data, "backup_label"))

        # --snapshot-recovery-zone is barman's deprecated name for --gcp-zone.
        done = pgvault(
            *restore,
            *("--snapshot-recovery-zone", ZONE, "--snapshot-mount", f"restored={volume_dir}"),
            env=env,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        check_snapshot_recovery(cluster.data, cluster.bindir, backup_id, expected)
    finally:
        for path in (copy, aside):
            shutil.rmtree(path, ignore_errors=True)
        source.cluster.drop()


def test_gcp_missing_resources_bad_input_and_delete(
    make_dest: Any, pg: Any, gce: GceServer, tmp_path: Any
) -> None:
    """Exit 1 naming the missing project, instance or disk, with nothing recorded; exit 3 for
    what cannot be combined; one line each, no traceback. backup-delete deletes the
    snapshot first, as barman-cloud-backup-delete does."""
    dest: TestDestination = make_dest("gcs")
    env = _env(dest, gce)
    gce.add_instance(PROJECT, ZONE, "pg-lonely", [("attached", "attached-device")])
    gce.add_disk(PROJECT, ZONE, "loose")
    base = [*pg.conninfo_args(), *dest.cli_args]
    good = ["--snapshot-instance", "pg-lonely", "--snapshot-disk", "attached"]

    def backup(*flags: str, environ: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        result = pgvault("backup", *base, *flags, dest.url, SERVER, env=environ)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        return result

    cases = [
        (["--snapshot-instance", "no-such-vm", "--snapshot-disk", "x", *GCP], 1, "no-such-vm"),
        (
            [*good, "--gcp-project", "no-such-project", "--gcp-zone", ZONE],
            1,
            "project no-such-project",
        ),
        ([*good, "--gcp-project", PROJECT, "--gcp-zone", "mars-1a"], 1, "zone mars-1a"),
        (["--snapshot-instance", "pg-lonely", "--snapshot-disk", "loose", *GCP], 1, "loose"),
        # attached, but /dev/disk/by-id/google-attached-device is mounted nowhere here
        ([*good, *GCP], 1, "not mounted"),
        ([*good, "--gcp-project", PROJECT], 3, "--gcp-zone"),
        ([*good, "--gcp-zone", ZONE], 3, "--gcp-project"),
        ([*good, *GCP, "--aws-region", "us-east-1"], 3, "two clouds"),
        ([*good, *GCP, "--snapshot-gcp-project", "other"], 3, "disagree"),
        ([*good, *GCP, "--gzip"], 3, "compr"),
        ([*good, *GCP, "--snapshot-mount", f"attached={tmp_path}"], 3, "on none of the"),
    ]
    for flags, code, named in cases:
        result = backup(*flags)
        assert result.returncode == code, (flags, result.stderr)
        assert named in result.stderr, (flags, result.stderr)
    dead = {**env, "PGVAULT_GCP_COMPUTE_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    unreachable = backup(*good, *GCP, environ=dead)
    assert unreachable.returncode == 2, unreachable.stderr
    assert "cannot reach the Compute Engine endpoint" in unreachable.stderr
    with dest.store() as store:
        assert list(store.list_objects(f"{SERVER}/")) == []  # nothing recorded
    assert gce.snapshots == {}

    # A snapshot backup of a cluster whose data directory is on the "disk" (no archiving
    # here, so --no-wal-check), then the recovery checks and the deletion.
    mounted = ["--snapshot-mount", f"attached={os.path.dirname(pg.data)}"]
    old_names = ["--snapshot-gcp-project", PROJECT, "--snapshot-zone", ZONE]  # barman's
    done = backup(*good, *old_names, *mounted, "--no-wal-check")
    assert done.returncode == 0, done.stderr
    backup_id = done.stdout.strip()
    name = f"attached-{backup_id.lower()}"
    assert (PROJECT, name) in gce.snapshots
    target = str(tmp_path / "restored")
    restore = [*dest.cli_args, dest.url, SERVER, backup_id, target]
    recovery = ["--snapshot-recovery-instance", "pg-lonely", "--gcp-zone", ZONE]
    missing = pgvault("restore", *recovery, *restore, env=env)
    assert missing.returncode == 1, missing.stderr
    assert f"no volume created from snapshot {name}" in missing.stderr
    gone = ["--snapshot-recovery-instance", "gone", "--gcp-zone", ZONE]
    unknown = pgvault("restore", *gone, *restore, env=env)
    assert unknown.returncode == 1 and "GCE instance gone" in unknown.stderr, unknown.stderr
    aws = pgvault("restore", *recovery, "--aws-region", "us-east-1", *restore, env=env)
    assert aws.returncode == 3, aws.stderr
    assert not os.path.exists(target)

    deleted = pgvault("backup-delete", *dest.cli_args, "-b", backup_id, dest.url, SERVER, env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert gce.snapshots == {}
    assert ("DELETE", f"/compute/v1/projects/{PROJECT}/global/snapshots/{name}") in gce.requests
    with dest.store() as store:
        assert list(store.list_objects(f"{SERVER}/base/")) == []
