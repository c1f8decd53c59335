"""Run one instance's backup, or delete one of its backups, as a normal job.

Scheduled and ad hoc backups share take_backup: the run record is claimed first (a
conditional write, so one slot runs once), the database password is read from the
instance's secret reference only now, and the record ends SUCCEEDED or FAILED.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from core.errors import InputError
from core.jobs import JobState, JobStore
from core.jobs.runner import run_foreground
from core.postgres.connection import ConnectionParams
from core.protection.model import BackupInstance, RunRecord, RunState, RunTrigger
from core.protection.service import OpenVault

log = logging.getLogger("pgvault.protection")


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one slot: it ran (succeeded or failed) or another agent had it."""

    instance: str
    slot: datetime
    trigger: RunTrigger
    tag: str | None
    claimed: bool
    record: RunRecord | None = None

    def to_json(self) -> dict[str, object]:
        if self.record is not None:
            return self.record.to_json()
        return {
            "instance": self.instance,
            "slot": self.slot.isoformat(),
            "state": "claimed-elsewhere",
            "tag": self.tag,
            "trigger": str(self.trigger),
        }


def connection_for(instance: BackupInstance) -> ConnectionParams:
    """The instance's conninfo with the password from its secret reference (registered)."""
    conninfo = instance.datasource.conninfo
    secret = instance.datasource.secret
    if secret is None:
        return ConnectionParams(dbname=conninfo)
    password = secret.resolve()
    if conninfo.lower().startswith(("postgres://", "postgresql://")):
        from urllib.parse import quote

        joiner = "&" if "?" in conninfo else "?"
        return ConnectionParams(dbname=f"{conninfo}{joiner}password={quote(password, safe='')}")
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    return ConnectionParams(dbname=f"{conninfo} password='{quoted}'".strip())


def take_backup(  # noqa: PLR0913 - one value per fact of the run
    vault: OpenVault,
    jobs: JobStore,
    instance: BackupInstance,
    *,
    rule: str,
    slot: datetime,
    trigger: RunTrigger,
    tag: str,
    agent_id: str,
) -> RunOutcome:
    """Claim the slot and, when this caller got it, run the backup job and record the end."""
    record = RunRecord(instance.name, slot, rule, trigger, RunState.CLAIMED, agent_id, tag)
    if not vault.store.claim_run(record):
        return RunOutcome(instance.name, slot, trigger, tag, claimed=False)
    try:
        from core.backup.request import make_backup_request
        from core.jobs.builtin import BACKUP
        from core.jobs.results import BackupJobResult

        request = make_backup_request(
            vault.location,
            instance.server_name,
            store_config=vault.config,
            connection=connection_for(instance),
            # a slot's backup should start at its slot, not after a spread checkpoint
            immediate_checkpoint=True,
        )
        outcome = run_foreground(jobs, BACKUP, request, capture_logging=True)
    except InputError as exc:
        ended = replace(record, state=RunState.FAILED, finished=_now(), error=str(exc))
        vault.store.update_run(ended)
        return RunOutcome(instance.name, slot, trigger, tag, True, ended)
    job = outcome.job
    if job.state is JobState.SUCCEEDED:
        result = job.result_as(BackupJobResult)
        ended = replace(
            record,
            state=RunState.SUCCEEDED,
            job_id=str(job.id),
            backup_id=result.backup_id,
            finished=_now(),
        )
    else:
        ended = replace(
            record,
            state=RunState.FAILED,
            job_id=str(job.id),
            finished=_now(),
            error=job.error or str(outcome.error),
        )
    vault.store.update_run(ended)
    return RunOutcome(instance.name, slot, trigger, tag, True, ended)


def delete_backup(vault: OpenVault, jobs: JobStore, server: str, backup_id: str) -> str | None:
    """Delete one backup (and the WAL only it needed) as a delete job; the error, or None."""
    from core.catalog.delete import DeleteRequest
    from core.jobs.builtin import DELETE

    request = DeleteRequest(
        location=vault.location, server=server, store_config=vault.config, backup=backup_id
    )
    outcome = run_foreground(jobs, DELETE, request, capture_logging=True)
    if outcome.job.state is JobState.SUCCEEDED:
        return None
    return outcome.job.error or str(outcome.error)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


__all__ = ["RunOutcome", "connection_for", "delete_backup", "take_backup"]
