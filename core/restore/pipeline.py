"""The restore: the backup pipe run backwards, then recovery configured.

    run_restore(RestoreRequest(...), reporter) -> RestoreResult

The request is checked, the backup planned (core.restore.plan: nothing written yet), then
the phases below run in order over one RestoreRun (core.restore.state). Any failure or
cancellation removes everything the restore wrote (core.restore.cleanup), so nothing
half-restored is ever left that PostgreSQL would start on.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from core.encryption import unlock_in_background
from core.progress import NullReporter, Reporter
from core.restore.chain_fetch import fetch_backup
from core.restore.cleanup import clean_up, prepare_directories
from core.restore.configure import configure_recovery
from core.restore.delta import mark_restoring, own_new_directories, prepare_delta
from core.restore.fetch import check_recorded_archives, check_restored
from core.restore.finish import (
    check_pg_control,
    lay_out,
    restore_result,
    seal,
    write_backup_manifest,
)
from core.restore.ownership import check_command_early, settle_owner
from core.restore.plan import check_request, plan_restore
from core.restore.request import RestoreRequest, RestoreResult
from core.restore.rerun import continue_killed
from core.restore.state import RestoreRun
from core.restore.walcheck import check_wal_continuity
from core.storage import open_store

Phase = Callable[[RestoreRun], None]

#: what a planned restore does, in order
PHASES: tuple[Phase, ...] = (
    check_wal_continuity,  # the archived WAL makes the backup consistent and reaches the target
    prepare_directories,  # the recovery directory and tablespace locations, created or adopted
    prepare_delta,  # --delta: checked, pg_control aside, matching files kept, the rest removed
    mark_restoring,  # a marker a rerun after a kill finds (core.restore.rerun)
    check_recorded_archives,  # the stored parts are those pgvault.json records
    check_command_early,  # restore_command runs as us (as root: once the owner is known)
    fetch_backup,  # download, checksum, decompress and untar every part (of a chain), -J at once
    check_restored,  # every file pgvault.json records arrived
    settle_owner,  # the data directory's owner (restore_command checked as that user)
    own_new_directories,  # --delta: the directories no archive described get that owner
    check_pg_control,  # the restored pg_control is intact and the backup's
    lay_out,  # an empty pg_wal, the pg_tblspc links
    write_backup_manifest,  # PostgreSQL's, for pg_verifybackup
    configure_recovery,  # restore_command, the recovery target, recovery.signal
    seal,  # fsync, then global/pg_control put in place last
)


def run_restore(request: RestoreRequest, reporter: Reporter | None = None) -> RestoreResult:
    """Restore one backup and configure its recovery; raises a PgvaultError when it cannot."""
    reporter = reporter or NullReporter()
    paths = check_request(request)
    request = continue_killed(request, paths.recovery_dir)
    store = open_store(request.location, request.store_config)
    store.meter = reporter.transferred
    # Every ranged read passes the job's checkpoint: a pause stops the downloads too.
    store.gate = reporter.checkpoint
    with store:
        # An encrypted server's passphrase costs a scrypt: begun while the plan lists the
        # backups, before its manifest (encrypted) needs the keys.
        unlock_in_background(store, request.server)
        started = time.monotonic()
        plan = plan_restore(request, paths, store, reporter)
        run = RestoreRun.start(request, paths, plan, reporter, store, started)
        try:
            for phase in PHASES:
                phase(run)
        except BaseException as exc:
            store.gate = None  # the cleanup itself is not paused or cancelled
            clean_up(run, exc)
            raise
        finally:
            if run.marker is not None:
                run.marker.release()  # after the cleanup: no other restore starts before it ends
        return restore_result(run)


__all__ = ["PHASES", "run_restore"]
