"""The physical backup: one call a command line, a job engine or the console makes.

    run_backup(BackupRequest(...), reporter) -> BackupResult

The phases, in the order pgBackRest's cmdBackup runs them:

- start (core.backup.start): check the destination; connect; refuse when WAL archiving is
  off (core.backup.wal_check); prove the data directory on
  this host is the server's; clean up after interrupted backups; claim a backup ID
  (backup.info STARTED written only if absent); write the lease (core.backup.lease), renewed
  until the backup ends; record what the cluster holds; pg_backup_start.
- plan (core.backup.plan): walk tablespaces and PGDATA; incremental
  (core.backup.increment_plan), keep only what changed since the parent, or fall back to a
  full backup saying why; resuming, keep the failed run's parts whose files are unchanged
  (an incremental's: on the failed run's parent, core.backup.increment_resume).
- stream (core.backup.stream): each archive set read, checksummed, compressed and uploaded
  in parallel; pg_control last.
- stop (core.backup.stop): pg_backup_stop, then wait for the WAL to be archived; then
  (core.backup.wal_check) wait until that WAL is in this destination under this server
  name, failing after --wal-timeout; then backup_label into the last data part.
- seal (core.backup.seal): backup_manifest and pgvault.json; backup.info DONE last.

Any error or cancellation after the claim goes through core.backup.failure: backup.info
FAILED with the reason, no unfinished upload, and PostgreSQL out of backup mode.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from core.backup.failure import fail
from core.backup.increment import ParentChoice, choose_parent
from core.backup.increment_plan import plan_increment
from core.backup.increment_resume import resumed_choice
from core.backup.lease import heartbeat
from core.backup.plan import keep_stored_parts, plan_files
from core.backup.request import BackupRequest, validate_request
from core.backup.result import BackupResult
from core.backup.seal import seal
from core.backup.start import connect, start_backup
from core.backup.state import BackupJob, BackupState
from core.backup.stop import stop_backup
from core.backup.stream import finish_upload, stream_files
from core.backup.wal_check import wait_for_wal
from core.catalog.lock import server_lock
from core.errors import OperationFailed
from core.progress import NullReporter, Reporter
from core.storage import ObjectStore, open_store


def run_backup(request: BackupRequest, reporter: Reporter | None = None) -> BackupResult:
    """Take one physical backup; raises a PgvaultError subclass when it cannot."""
    reporter = reporter or NullReporter()
    validate_request(request)
    store = open_store(request.location, request.store_config)
    store.meter = reporter.transferred
    with store, _resume_lock(store, request):
        choice = None
        if request.incremental and request.resume:
            # The failed run's parent, whatever is newer now: its parts are changes since it.
            choice = resumed_choice(store, request.server, request.resume)
        elif request.incremental:
            # Before anything is recorded: an unknown parent is bad input (exit 3).
            choice = choose_parent(
                store, request.server, request.incremental, request.incremental_from
            )
        state = connect(BackupJob.create(request, reporter, store))
        try:
            lease = state.manifest.lease or {}
            with heartbeat(store, state.job.layout, state.backup_id, lease):
                return _phases(state, choice)
        except BaseException as exc:
            fail(state, exc)


def _resume_lock(store: ObjectStore, request: BackupRequest) -> AbstractContextManager[object]:
    """A resumed backup holds the server's lock: retention or a delete never runs under it."""
    if not request.resume:
        return nullcontext()
    return server_lock(store, request.server, f"backup --resume {request.resume}")


def _phases(state: BackupState, choice: ParentChoice | None) -> BackupResult:
    mode = start_backup(state)
    plan = plan_files(state)
    increment = None
    if choice is not None:
        plan, increment = plan_increment(state, mode, plan, choice)
        if increment is None and state.resuming:  # its parts are changes: never a full backup
            raise OperationFailed(
                f"cannot resume incremental backup {state.backup_id}: "
                f"{(state.manifest.incremental or {}).get('fallback')}; take a new backup instead"
            )
    if state.resuming:
        plan = keep_stored_parts(state, plan, increment.chooser if increment else None)
    copy = stream_files(state, plan, increment.chooser if increment else None)
    stop = stop_backup(state, mode)
    wait_for_wal(state, mode, stop)
    copy_time = finish_upload(state, copy, mode, stop)
    return seal(state, plan, mode, stop, copy_time, increment)
