"""Claiming a backup ID: backup.info STARTED, written only if no other backup has the ID.

A resumed backup takes over the failed backup's ID instead (see core.backup.resume). Either
way the claim yields the BackupState the later phases share.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from core import __version__
from core.backup.lease import new_lease
from core.backup.resume import StoredBackup, resumable_manifest
from core.backup.state import BackupJob, BackupState
from core.catalog.backup_info import STARTED, BackupInfo, serialize
from core.catalog.manifest import PgvaultManifest
from core.errors import ObjectExists, OperationFailed
from core.postgres.connection import ServerFacts, Session

log = logging.getLogger("pgvault.backup")

ID_ATTEMPTS = 120
CLAIMING = "claiming a backup ID"
RESUMING = "resuming a failed backup"


def claim(job: BackupJob, session: Session, facts: ServerFacts) -> BackupState:
    """Pick a backup ID nobody else has, or take over the one to resume."""
    if job.request.resume:
        job.reporter.phase(RESUMING)
        backup_id = _reclaim(job, facts, job.request.resume)
    else:
        job.reporter.phase(CLAIMING)
        backup_id = _new_id(job, facts)
    state = BackupState(
        job=job,
        session=session,
        facts=facts,
        backup_id=backup_id,
        resuming=bool(job.request.resume),
        info=_base_info(job, backup_id, facts),
        manifest=_new_manifest(job, backup_id, facts),
        phase=RESUMING if job.request.resume else CLAIMING,
    )
    job.reporter.detail("backup_id", backup_id)
    job.store.gate = state.checkpoint
    log.info("backup %s of server %s started", backup_id, job.request.server)
    return state


def _new_id(job: BackupJob, facts: ServerFacts) -> str:
    """The first second from now whose ID has no object yet and whose STARTED we wrote."""
    when = datetime.now().replace(microsecond=0)
    for _ in range(ID_ATTEMPTS):
        candidate = when.strftime("%Y%m%dT%H%M%S")
        when += timedelta(seconds=1)
        prefix = job.layout.backup_prefix(candidate)
        if next(iter(job.store.list_objects(prefix)), None) is not None:
            continue
        try:
            job.store.put_bytes(
                job.layout.backup_info(candidate),
                serialize(_base_info(job, candidate, facts)),
                replace(job.options, if_absent=True),
            )
        except ObjectExists:
            continue
        return candidate
    raise OperationFailed(f"no free backup ID found for server {job.request.server}")


def _reclaim(job: BackupJob, facts: ServerFacts, backup_id: str) -> str:
    """Take over a FAILED backup's ID to continue it (see core.backup.resume)."""
    stored = StoredBackup(job.store, job.layout, backup_id, job.recipient)
    resumable_manifest(stored, facts, job.compression, job.algorithm)
    job.store.put_bytes(
        job.layout.backup_info(backup_id),
        serialize(_base_info(job, backup_id, facts)),
        job.options,
    )
    return backup_id


def _base_info(job: BackupJob, backup_id: str, facts: ServerFacts) -> BackupInfo:
    request = job.request
    return BackupInfo(
        backup_id=backup_id,
        status=STARTED,
        backup_name=request.name,
        server_name=request.server,
        systemid=facts.system_identifier,
        version=facts.version_num,
        pgdata=facts.data_directory,
        tablespaces=facts.tablespaces or None,
        xlog_segment_size=facts.wal_segment_size,
        data_checksums=facts.data_checksums,
        summarize_wal=facts.summarize_wal,
        cluster_size=facts.cluster_size,
        config_file=facts.config_file,
        hba_file=facts.hba_file,
        ident_file=facts.ident_file,
        included_files=list(facts.included_files) or None,
        compression=job.compression,
    )


def _new_manifest(job: BackupJob, backup_id: str, facts: ServerFacts) -> PgvaultManifest:
    """pgvault.json of a running backup: its lease, settings and the server's facts."""
    codec = job.codec
    return PgvaultManifest(
        backup_id=backup_id,
        server=job.request.server,
        state="running",
        pgvault_version=__version__,
        started=datetime.now().astimezone().isoformat(),
        lease=new_lease(),
        compression=job.compression,
        compression_level=codec.clamp(job.request.compression_level) if codec else None,
        checksum_algorithm=job.algorithm,
        encryption=f"age {job.recipient}" if job.recipient is not None else None,
        tablespaces=[
            {"name": t.name, "oid": t.oid, "location": t.location} for t in facts.tablespaces
        ],
        postgres={
            "version": facts.version_num,
            "version_text": facts.version_text,
            "system_identifier": facts.system_identifier,
            "segment_size": facts.wal_segment_size,
            "block_size": facts.block_size,
            "data_checksums": facts.data_checksums,
            "in_recovery": facts.in_recovery,
        },
    )
