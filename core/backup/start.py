"""The start phase: connect, prove the data directory, claim an ID, pg_backup_start."""

from __future__ import annotations

import logging
from dataclasses import replace

from core.backup.checkpoint_wait import CheckpointWatch
from core.backup.claim import claim
from core.backup.control import check_data_directory
from core.backup.lease import reap_interrupted
from core.backup.state import BackupJob, BackupMode, BackupState
from core.backup.stop import archiving_failure, archiving_here
from core.backup.wal_check import require_archiving
from core.catalog.backup_info import BackupInfo
from core.catalog.manifest import DatabaseRecord, TableRecord
from core.errors import Cancelled, PgvaultError
from core.postgres.connection import BackupSession, BackupStart, ServerFacts, Session, read_facts
from core.postgres.inventory import inventory
from core.postgres.walnames import format_lsn, segment_of_lsn


def connect(job: BackupJob) -> BackupState:
    """Reach the store and the server, check the data directory, claim a backup ID.

    Nothing is marked FAILED when this fails: no backup of ours exists yet.
    """
    job.reporter.phase("connecting")
    job.store.check()
    session = Session(job.request.connection, "pgvault backup", checkpoint=job.reporter.checkpoint)
    try:
        facts = read_facts(session)
        check_data_directory(facts)
        if job.request.wal_check:
            require_archiving(facts, job.request.server, job.request.location.display())
        try:
            reap_interrupted(job.store, job.request.server)
        except Exception as exc:  # cleaning up after others never stops a backup
            job.reporter.log(f"could not clean up interrupted backups: {exc}", logging.WARNING)
        return claim(job, session, facts)
    except BaseException:
        session.close()
        raise


def start_backup(state: BackupState) -> BackupMode:
    """Record the running backup and what the cluster holds, then pg_backup_start."""
    state.put_manifest()
    state.session.query(
        "SELECT set_config('application_name', %s, false)",
        (f"pgvault backup {state.backup_id}",),
    )
    if state.facts.archive_mode == "off":
        state.log(
            "WAL archiving is off on this server: the backup can only be restored with "
            "the WAL from its start to its end, which you must keep yourself",
            logging.WARNING,
        )
    elif archiving_here(state.facts):
        _warn_if_archiving_fails(state)
    state.enter("recording databases and tables")
    databases, tables = _inventory(state)
    state.manifest = replace(state.manifest, databases=databases, tables=tables)

    request = state.job.request
    backup = BackupSession(state.session, state.facts.version_num, request.keepalive_interval)
    state.backup = backup
    label = f"pgvault backup {request.server} {state.backup_id}"
    if request.immediate_checkpoint:
        state.enter("starting the backup (immediate checkpoint)")
        start = backup.start(label, fast=True)
    else:
        with CheckpointWatch(state):
            start = backup.start(label, fast=False)
    state.info = _with_start(state.info, start, state.facts)
    state.enter("recording the start")  # a failure here is the store's, not the checkpoint's
    state.put_info()
    return BackupMode(backup, start)


def _warn_if_archiving_fails(state: BackupState) -> None:
    """Say at once what would otherwise show only as a backup that never ends."""
    failure = archiving_failure(state)
    if failure is not None:
        state.log(
            f"WAL archiving is failing: {failure.describe()}. This backup will wait at its "
            "end until the segments it needs are archived",
            logging.WARNING,
        )


def _inventory(state: BackupState) -> tuple[tuple[DatabaseRecord, ...], tuple[TableRecord, ...]]:
    try:
        return inventory(
            state.session, state.job.request.connection, f"pgvault backup {state.backup_id}"
        )
    except PgvaultError as exc:
        if isinstance(exc, Cancelled):
            raise
        state.log(f"databases and tables not recorded: {exc}", logging.WARNING)
        return (), ()


def _with_start(info: BackupInfo, start: BackupStart, facts: ServerFacts) -> BackupInfo:
    size = facts.wal_segment_size
    return info.with_changes(
        timeline=start.timeline,
        begin_time=start.time,
        begin_xlog=format_lsn(start.lsn),
        begin_wal=segment_of_lsn(start.timeline, start.lsn, size),
        begin_offset=start.lsn % size,
    )
