"""Restore a snapshot backup, as barman-cloud-restore does, then configure recovery as pgvault
restores do.

The disks are the data: the operator creates volumes from the backup's snapshots and
attaches and mounts them on the recovery instance. This checks that each snapshot has a
volume created from it attached to that instance, mounted where (and with the options) the
source disk was (barman's SnapshotRecoveryExecutor checks), and that RECOVERY_DIR is a data
directory there; then writes the backup's `backup_label` into it, and the recovery settings
and recovery.signal (core.restore.configure), as for any pgvault restore.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

from core.catalog.backup_info import BackupInfo
from core.catalog.reader import Catalog
from core.errors import InputError, ObjectNotFound, OperationFailed
from core.postgres.server import is_running, postmaster_pid
from core.progress import NullReporter, Reporter
from core.restore.cleanup import clean_up
from core.restore.configure import configure_recovery
from core.restore.extract import write_file
from core.restore.finish import restore_result
from core.restore.ownership import settle_owner
from core.restore.plan import BackupPlan, check_request
from core.restore.request import RestoreRequest, RestoreResult
from core.restore.state import RestoreRun
from core.restore.targets import choose_backup
from core.restore.walcheck import check_wal_continuity
from core.snapshots.clouds import Account, open_provider
from core.snapshots.info import SnapshotsInfo, load
from core.snapshots.mounts import Mount, mount_of_path
from core.snapshots.provider import SnapshotProvider
from core.snapshots.request import SnapshotRecovery, check_recovery
from core.storage import ObjectStore, open_store

STALE_FILES = ("postmaster.pid", "postmaster.opts")  # what barman's backups leave out


def _recovery(request: RestoreRequest) -> SnapshotRecovery:
    if request.snapshot is None:
        raise InputError("not a snapshot recovery")
    return request.snapshot


def run_snapshot_restore(
    request: RestoreRequest, reporter: Reporter | None = None
) -> RestoreResult:
    """Check the recovery instance's disks, write backup_label and the recovery settings."""
    reporter = reporter or NullReporter()
    recovery = _recovery(request)
    check_recovery(recovery, request.tablespaces, request.delta or request.force)
    paths = check_request(request)
    store = open_store(request.location, request.store_config)
    store.meter = reporter.transferred
    with store:
        started = time.monotonic()
        reporter.phase("choosing the backup")
        store.check_readable()
        catalog = Catalog(store, request.server)
        info = choose_backup(catalog, request.backup, request.target)
        reporter.detail("backup_id", info.backup_id)
        snapshots = _snapshots(info)
        reporter.phase("checking the recovery instance's disks")
        check_volumes(snapshots, recovery)
        _check_recovery_dir(paths.recovery_dir)
        label = _backup_label(store, catalog, info)
        plan = BackupPlan(info, [], None, None, {}, False, {})
        run = RestoreRun.start(request, paths, plan, reporter, store, started)
        check_wal_continuity(run)
        settle_owner(run)
        _remove_stale(run)
        reporter.phase("writing backup_label")
        path = os.path.join(paths.recovery_dir, "backup_label")
        signal = os.path.join(paths.recovery_dir, "recovery.signal")
        written = [path] if os.path.exists(signal) else [path, signal]
        write_file(path, label, run.file_owner)
        run.syncer.add(path)
        try:
            configure_recovery(run)
            run.syncer.finish()
        except BaseException as exc:
            clean_up(run, exc)  # restore_command's directory and credentials
            for name in written:
                with contextlib.suppress(OSError):
                    os.unlink(name)  # PostgreSQL must not start half-configured
            raise
        reporter.phase("done")
        return restore_result(run)


def _snapshots(info: BackupInfo) -> SnapshotsInfo:
    if not info.snapshots_info:
        raise InputError(
            f"backup {info.backup_id} is not a snapshot backup: restore it without "
            "--snapshot-recovery-instance"
        )
    snapshots = load(info.snapshots_info)
    if snapshots.provider not in ("aws", "gcp", "azure"):
        raise InputError(
            f"backup {info.backup_id} holds {snapshots.provider} disk snapshots: pgvault "
            "restores AWS, GCP and Azure snapshot backups only"
        )
    return snapshots


def _recovery_cloud(snapshots: SnapshotsInfo, recovery: SnapshotRecovery) -> SnapshotProvider:
    """The backup's provider (as barman's get_snapshot_interface_from_backup_info): GCP in
    the backup's project and the recovery zone, Azure in the backup's subscription and the
    recovery resource group, AWS in --aws-region or the backup's."""
    if snapshots.provider == "azure":
        if recovery.region or recovery.gcp_zone:
            raise InputError("--aws-region/--gcp-zone: this backup's snapshots are Azure's")
        if not recovery.azure_resource_group:
            raise InputError(
                "restoring Azure disk snapshots needs --azure-resource-group: the resource "
                "group of the recovery VM"
            )
        account = Account(
            subscription_id=snapshots.get("subscription_id"),
            resource_group=recovery.azure_resource_group,
            credential=recovery.azure_credential,
        )
        return open_provider("azure", account)
    if recovery.azure_resource_group:
        raise InputError(
            f"--azure-resource-group: this backup's snapshots are {snapshots.provider}'s"
        )
    if snapshots.provider == "gcp":
        if recovery.region:
            raise InputError("--aws-region: this backup's snapshots are GCP's, not AWS's")
        if not recovery.gcp_zone:
            raise InputError(
                "restoring GCP disk snapshots needs --gcp-zone (or --snapshot-recovery-zone): "
                "the zone of the recovery instance"
            )
        return open_provider(
            "gcp", Account(project=snapshots.get("project"), zone=recovery.gcp_zone)
        )
    if recovery.gcp_zone:
        raise InputError(f"--gcp-zone: this backup's snapshots are {snapshots.provider}'s")
    account = Account(region=recovery.region or snapshots.get("region"), profile=recovery.profile)
    return open_provider("aws", account)


def check_volumes(snapshots: SnapshotsInfo, recovery: SnapshotRecovery) -> None:
    """Each snapshot's volume attached to the instance and mounted as the source disk was."""
    cloud = _recovery_cloud(snapshots, recovery)
    instance = cloud.instance(recovery.instance)
    attached = cloud.attached(instance)
    overrides = dict(recovery.mounts)
    problems = []
    for snapshot in snapshots.snapshots:
        snapshot_id = snapshots.identifier(snapshot)
        volume = next((v for v in attached if v.source_snapshot == snapshot_id), None)
        if volume is None:
            problems.append(f"no volume created from snapshot {snapshot_id} is attached")
            continue
        path = overrides.get(volume.volume_id) or overrides.get(volume.name or "")
        mount: Mount | None = mount_of_path(path) if path else cloud.mount_of(volume, instance)
        if mount is None:
            problems.append(f"volume {volume.volume_id} ({volume.device}) is not mounted here")
        elif mount.point != snapshot.mount_point:
            problems.append(
                f"volume {volume.volume_id} from snapshot {snapshot_id} is mounted at "
                f"{mount.point} but {snapshot.mount_point} was expected"
            )
        elif mount.options != snapshot.mount_options:
            problems.append(
                f"volume {volume.volume_id} from snapshot {snapshot_id} is mounted with "
                f"{mount.options} but {snapshot.mount_options} was expected"
            )
    if problems:
        raise OperationFailed(f"recovery instance {recovery.instance}: {'; '.join(problems)}")


def _check_recovery_dir(recovery_dir: str) -> None:
    if not os.path.isdir(recovery_dir):
        raise OperationFailed(
            f"recovery directory {recovery_dir} does not exist on the recovery instance: check "
            "that every disk has been created from its snapshot, attached and mounted"
        )
    if not os.path.isfile(os.path.join(recovery_dir, "global", "pg_control")):
        raise OperationFailed(
            f"{recovery_dir} holds no global/pg_control: it is not the snapshotted data directory"
        )
    if _server_on(recovery_dir):
        raise OperationFailed(
            f"PostgreSQL (PID {postmaster_pid(recovery_dir)}) is running on {recovery_dir}: "
            "stop it before restoring a snapshot backup into it"
        )


def _server_on(pgdata: str) -> bool:
    """A live postmaster whose working directory is this one (a snapshot's postmaster.pid
    names the source's, long gone or another process)."""
    if not is_running(pgdata):
        return False
    pid = postmaster_pid(pgdata)
    try:
        return os.path.realpath(f"/proc/{pid}/cwd") == os.path.realpath(pgdata)
    except OSError:
        return True


def _backup_label(store: ObjectStore, catalog: Catalog, info: BackupInfo) -> bytes:
    try:
        return store.get_bytes(catalog.layout.backup_file(info.backup_id, "backup_label"))
    except ObjectNotFound:
        raise OperationFailed(
            f"backup {info.backup_id} has no backup_label object: it cannot be restored"
        ) from None


def _remove_stale(run: RestoreRun) -> None:
    """The snapshot's postmaster.pid/opts were the source server's: removed."""
    for name in STALE_FILES:
        path = os.path.join(run.pgdata, name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            run.reporter.log(f"removed {path} (the source server's, from the snapshot)")
    for name in ("recovery.signal", "standby.signal"):
        if os.path.exists(os.path.join(run.pgdata, name)):
            run.reporter.log(f"{name} was on the snapshot: kept", logging.WARNING)
