"""The snapshot backup, in barman-cloud's order (CloudBackupSnapshot.backup):

1. before anything is recorded: the instance exists, each --snapshot-disk is attached to it
   and mounted here (core.snapshots.mounts), and the data directory and every tablespace
   lie on those disks (else the snapshots would not hold the cluster);
2. connect and claim an ID (backup.info STARTED), pg_backup_start (core.backup.start);
3. one snapshot per disk, awaited until completed;
4. pg_backup_stop and the WAL check, as any backup (core.backup.stop, core.backup.wal_check);
5. `backup_label` uploaded as its own object, then backup.info DONE with snapshots_info.

No data archive is written: the snapshots are the data. A failure after the claim marks the
backup FAILED through core.backup.failure, as for a streamed backup.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime

from core.backup.failure import fail
from core.backup.request import BackupRequest, validate_request
from core.backup.result import BackupResult
from core.backup.start import connect, start_backup
from core.backup.state import BackupJob, BackupMode, BackupState
from core.backup.stop import stop_backup
from core.backup.wal_check import wait_for_wal
from core.catalog.backup_info import DONE
from core.errors import InputError, OperationFailed
from core.postgres.connection import BackupStop, ServerFacts, Session, read_facts
from core.postgres.walnames import format_lsn, segment_of_lsn
from core.progress import NullReporter, Reporter
from core.snapshots.clouds import Account, open_provider
from core.snapshots.info import DiskSnapshot, SnapshotsInfo, dump
from core.snapshots.mounts import Mount, inside, mount_of_path
from core.snapshots.provider import Instance, SnapshotProvider, Volume, match_disk
from core.snapshots.request import SnapshotSource
from core.storage import open_store

BACKUP_LABEL = "backup_label"


@dataclass(frozen=True)
class Disk:
    """A --snapshot-disk as found: its volume, and where it is mounted here."""

    name: str  # as the operator named it (volume ID or Name tag)
    volume: Volume
    mount: Mount


def _source(request: BackupRequest) -> SnapshotSource:
    if request.snapshot is None:
        raise InputError("not a snapshot backup")
    return request.snapshot


def find_disks(cloud: SnapshotProvider, source: SnapshotSource) -> tuple[Instance, list[Disk]]:
    """The instance and its disks, each attached and mounted; OperationFailed naming the first
    missing resource."""
    instance = cloud.instance(source.instance)
    attached = cloud.attached(instance)
    overrides = dict(source.mounts)
    found = {d: match_disk(attached, d) for d in source.disks}
    missing = [d for d, v in found.items() if v is None]
    if missing:
        raise OperationFailed(
            f"disks not attached to {cloud.what} {source.instance}: {', '.join(missing)}"
        )
    disks = []
    for name, volume in found.items():
        if volume is None:
            continue
        if name in overrides:
            mount = mount_of_path(overrides[name])
        else:
            mounted = cloud.mount_of(volume, instance)
            if mounted is None:
                raise OperationFailed(
                    f"disk {name} ({volume.volume_id}, device {volume.device}) of {cloud.what} "
                    f"{source.instance} is not mounted on this host (findmnt finds no "
                    "mount); if the device has another name here, pass --snapshot-mount "
                    f"{name}=PATH"
                )
            mount = mounted
        disks.append(Disk(name, volume, mount))
    return instance, disks


def _check_covered(disks: list[Disk], facts: ServerFacts) -> None:
    """The data directory and every tablespace must be on a snapshotted disk."""
    places = [("the data directory", facts.data_directory)]
    places += [(f"tablespace {t.name}", t.location) for t in facts.tablespaces]
    for what, path in places:
        if not any(inside(path, d.mount.point) for d in disks):
            mounts = ", ".join(f"{d.name} at {d.mount.point}" for d in disks)
            raise InputError(
                f"{what} {path} is on none of the snapshotted disks ({mounts}): "
                "its snapshot would not hold the cluster"
            )


def run_snapshot_backup(request: BackupRequest, reporter: Reporter | None = None) -> BackupResult:
    """Take one snapshot backup; raises a PgvaultError subclass when it cannot."""
    reporter = reporter or NullReporter()
    validate_request(request)  # the snapshot rules among them
    source = _source(request)
    reporter.phase("checking the instance and its disks")
    account = Account(
        region=source.region,
        profile=source.profile,
        project=source.gcp_project,
        zone=source.gcp_zone,
        subscription_id=source.azure_subscription_id,
        resource_group=source.azure_resource_group,
        credential=source.azure_credential,
    )
    cloud = open_provider(source.provider, account)
    _, disks = find_disks(cloud, source)
    probe = Session(request.connection, "pgvault backup")
    try:
        _check_covered(disks, read_facts(probe))
    finally:
        probe.close()
    store = open_store(request.location, request.store_config)
    store.meter = reporter.transferred
    with store:
        job = BackupJob.create(request, reporter, store)
        if job.recipient is not None:
            raise InputError(
                f"server {request.server} is encrypted in this destination: pgvault does not "
                "encrypt disk snapshots, so it takes no snapshot backup of it"
            )
        state = connect(job)
        try:
            return _phases(state, cloud, source, disks)
        except BaseException as exc:
            fail(state, exc)


def _phases(
    state: BackupState, cloud: SnapshotProvider, source: SnapshotSource, disks: list[Disk]
) -> BackupResult:
    mode = start_backup(state)
    copy_started = time.monotonic()
    state.enter("taking snapshots")
    state.checkpoint()
    identifiers, snapshots = _take(state, cloud, disks)
    state.enter("waiting for the snapshots")
    cloud.await_ready(identifiers, source.await_timeout, state.checkpoint)
    copy_time = time.monotonic() - copy_started
    stop = stop_backup(state, mode)
    wait_for_wal(state, mode, stop)
    info = SnapshotsInfo(cloud.kind, cloud.provider_info(), tuple(snapshots))
    return _seal(state, mode, stop, info, copy_time)


def _seal(
    state: BackupState, mode: BackupMode, stop: BackupStop, info: SnapshotsInfo, copy_time: float
) -> BackupResult:
    """backup_label as its own object, pgvault.json done, then backup.info DONE last."""
    state.enter("uploading backup_label")
    job = state.job
    job.store.put_bytes(
        job.layout.backup_file(state.backup_id, BACKUP_LABEL),
        stop.labelfile.encode(),
        job.options,
    )
    state.enter("writing backup.info")
    state.manifest = replace(
        state.manifest,
        state="done",
        finished=datetime.now().astimezone().isoformat(),
        lease=None,
        postgres={
            **state.manifest.postgres,
            "timeline": stop.timeline,
            "start_lsn": format_lsn(mode.start.lsn),
            "end_lsn": format_lsn(stop.lsn),
            "snapshots": info.to_dict(),
        },
    )
    state.put_manifest()
    elapsed = time.monotonic() - job.started_at
    size = state.facts.wal_segment_size
    state.info = state.info.with_changes(
        backup_label=stop.labelfile,
        end_time=stop.time,
        end_xlog=format_lsn(stop.lsn),
        end_wal=segment_of_lsn(stop.timeline, stop.lsn, size),
        end_offset=stop.lsn % size,
        status=DONE,
        snapshots_info=dump(info),
        copy_stats={"copy_time": round(copy_time, 6), "total_time": round(elapsed, 6)},
    )
    state.put_info()
    state.enter("done")
    return BackupResult(
        backup_id=state.backup_id,
        server=job.request.server,
        status=DONE,
        timeline=stop.timeline,
        begin_lsn=state.info.begin_xlog or "",
        end_lsn=state.info.end_xlog or "",
        begin_wal=state.info.begin_wal or "",
        end_wal=state.info.end_wal or "",
        files=0,
        bytes_read=0,
        bytes_stored=len(stop.labelfile),
        archives=(),
        elapsed=elapsed,
        compression=None,
        excluded={},
        kind="snapshot",
    )


def _take(
    state: BackupState, cloud: SnapshotProvider, disks: list[Disk]
) -> tuple[list[str], list[DiskSnapshot]]:
    """One snapshot per disk, named as barman names them: `<disk>-<backup id lowercased>`."""
    identifiers, snapshots = [], []
    for disk in disks:
        name = f"{disk.name}-{state.backup_id.lower()}"
        state.log(f"taking snapshot {name} of disk {disk.name} ({disk.volume.volume_id})")
        taken = cloud.create_snapshot(disk.volume, name, state.job.request.tags)
        identifiers.append(taken.identifier)
        snapshots.append(DiskSnapshot(disk.mount.point, disk.mount.options, taken.fields))
    return identifiers, snapshots
