"""Run one instance's backup, or delete one of its backups, as a normal job.

Scheduled and ad hoc backups share take_backup: the run record is claimed first (a
conditional write, so one slot runs once), the database password is read from the
instance's secret reference only now, and the record ends SUCCEEDED or FAILED.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import psycopg2
import psycopg2.extensions

from core.errors import InputError, OperationFailed, PgvaultError, ServerBusy, own_cause
from core.jobs import ACTIVE_STATES, Job, JobFilter, JobKind, JobState, JobStore, reap_if_gone
from core.jobs.runner import Outcome, run_foreground
from core.postgres.connection import ConnectionParams
from core.protection.claims import (
    CLAIM_THREAD,
    abandoned_reason,
    heartbeat,
    new_owner,
    take_over,
)
from core.protection.copy_owner import copy_killed, copy_owner
from core.protection.model import (
    BackupInstance,
    RunRecord,
    RunState,
    RunTrigger,
    check_conninfo,
)
from core.protection.policy import BackupType
from core.protection.service import OpenVault
from core.protection.stopping import STOP, stop_reason
from core.secrets import redact
from core.storage import ObjectStore
from core.urls import Provider

log = logging.getLogger("pgvault.protection")
R = TypeVar("R")


@dataclass(frozen=True)
class SecondaryCopy:
    """The copy job that followed a backup: where to, its job, and its error if it failed."""

    target: str  # a URL without credentials
    job_id: str | None
    error: str | None = None
    #: a stop signal cancelled it (or came before it started), and which: the next pass
    #: makes it (redo_interrupted_copies)
    interrupted: str | None = None

    def to_json(self) -> dict[str, object]:
        state = "failed" if self.error else "succeeded"
        return {
            "error": self.error,
            "interrupted": self.interrupted,
            "jobId": self.job_id,
            "state": state,
            "target": self.target,
        }


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one slot: it ran (succeeded or failed) or another agent had it."""

    instance: str
    slot: datetime
    trigger: RunTrigger
    tag: str | None
    claimed: bool
    record: RunRecord | None = None
    #: the copy of the new backup to the instance's secondary destination, when it has one
    secondary_copy: SecondaryCopy | None = None

    def to_json(self) -> dict[str, object]:
        if self.record is not None:
            document = self.record.to_json()
            if self.secondary_copy is not None:
                document["secondaryCopy"] = self.secondary_copy.to_json()
            return document
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
    try:  # an instance stored before create checked it: say so before the password is in it
        check_conninfo(conninfo, f"the datasource of backup instance {instance.name!r}")
    except InputError as exc:
        raise OperationFailed(str(exc)) from None
    secret = instance.datasource.secret
    if secret is None:
        return ConnectionParams(dbname=conninfo)
    # libpq's own quoting, for key=value and URI conninfo alike
    return ConnectionParams(
        dbname=psycopg2.extensions.make_dsn(conninfo, password=secret.resolve())
    )


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
    kind: BackupType | None = None,
) -> RunOutcome:
    """Claim the slot and, when this caller got it, run the backup job and record the end."""
    record = RunRecord(
        instance.name, slot, rule, trigger, RunState.CLAIMED, agent_id, tag, owner=new_owner()
    )
    while not vault.store.claim_run(record):
        if trigger is not RunTrigger.ADHOC:
            return RunOutcome(instance.name, slot, trigger, tag, claimed=False)
        # An ad hoc run asks for a backup now, not for a slot agents share: a second one in
        # the same second (a script, a small fast backup) takes the next free second.
        record = replace(record, slot=record.slot + timedelta(seconds=1))
    return run_claimed(vault, jobs, instance, record, kind)


def run_claimed(
    vault: OpenVault,
    jobs: JobStore,
    instance: BackupInstance,
    record: RunRecord,
    kind: BackupType | None,
) -> RunOutcome:
    """Run the backup of a slot this agent holds (its claim renewed meanwhile); record the end."""
    slot, trigger, tag = record.slot, record.trigger, record.tag
    try:
        with heartbeat(vault, record):
            outcome, backup_id = _run_job(vault, jobs, instance, kind)
    except Exception as exc:  # the claimed slot ends FAILED whatever stopped its job
        ended = replace(record, state=RunState.FAILED, finished=_now(), error=failure_text(exc))
        vault.store.update_run(ended)
        log.error("%s: the backup failed: %s", ended.instance, ended.error)
        return RunOutcome(instance.name, slot, trigger, tag, True, ended)
    job = outcome.job
    if job.state is JobState.SUCCEEDED:
        ended = replace(
            record,
            state=RunState.SUCCEEDED,
            job_id=str(job.id),
            backup_id=backup_id(job),
            finished=_now(),
        )
    else:
        stopped = stop_reason() if job.state is JobState.CANCELLED else None
        ended = replace(
            record,
            state=RunState.FAILED,
            job_id=str(job.id),
            finished=_now(),
            error=f"cancelled: {stopped}" if stopped else job.error or str(outcome.error),
            interrupted=stopped,
        )
    copying = bool(ended.backup_id and instance.secondary_destination)
    if copying:  # said before the copy starts: a killed copy is found by the next pass
        ended = replace(ended, copy_started=copy_owner())
    vault.store.update_run(ended)
    if ended.state is RunState.FAILED and not ended.interrupted:  # its own lines: its log
        log.error(
            "%s: the backup failed: %s (its log: pgvault --batch jobs log %s)",
            ended.instance,
            ended.error,
            ended.job_id,
        )
    copied = None
    if copying:
        copied = copy_to_secondary(vault, jobs, instance, ended.backup_id or "")
        # interrupted: the backup is DONE, its copy is not: the next pass makes it
        ended = replace(ended, copy_started=None, copy_interrupted=copied.interrupted)
        vault.store.update_run(ended)
    return RunOutcome(instance.name, slot, trigger, tag, True, ended, copied)


def redo_interrupted_copies(
    vault: OpenVault, jobs: JobStore, instance: BackupInstance
) -> list[RunOutcome]:
    """Make the copies to the secondary that a stopped agent cancelled (or did not start)
    after their backup succeeded, or whose process was killed (copy_killed; once: the agent
    winning the takeover marker makes it), unless the catalog records one there meanwhile or
    the backup is gone; the run forgets it once tried (a copy failing otherwise is reported,
    not retried, as any is)."""
    runs = [
        r
        for r in vault.store.runs(instance.name)
        if r.backup_id and (r.copy_interrupted or copy_killed(r))
    ]
    second = instance.secondary_destination
    if not runs:
        return []
    from core.catalog.copies import read_copies

    recorded = read_copies(vault.store.store, instance.server_name) if second else {}
    outcomes = []
    for record in runs:
        if stop_reason() is not None:
            break
        if not record.copy_interrupted and not _killed_and_taken(vault, jobs, record):
            continue
        backup_id, copied = record.backup_id or "", None
        if (
            second
            and second not in recorded.get(backup_id, ())
            and still_in_catalog(vault, instance.server_name, backup_id)
        ):
            vault.store.update_run(replace(record, copy_started=copy_owner()))
            copied = copy_to_secondary(vault, jobs, instance, backup_id)
        interrupted = copied.interrupted if copied else None
        ended = replace(record, copy_interrupted=interrupted, copy_started=None)
        vault.store.update_run(ended)
        if copied is not None:
            run = (record.slot, record.trigger, record.tag)
            outcomes.append(RunOutcome(instance.name, *run, True, ended, copied))
    return outcomes


def _killed_and_taken(vault: OpenVault, jobs: JobStore, record: RunRecord) -> bool:
    """A run whose copy was killed (copy_killed) and this agent won the right to make it
    again; its dead copy job in this job store is marked failed at once."""
    killed = copy_killed(record)
    if killed is None:
        return False
    token = str((record.copy_started or {}).get("token") or "unknown")
    if not vault.store.claim_takeover(record, f"copy-{token}"):
        return False  # another agent's pass makes it
    for job in jobs.list_jobs(JobFilter(states=tuple(ACTIVE_STATES), kinds=("copy",))):
        reap_if_gone(jobs, job.id)
    log.warning(
        "%s: the copy of backup %s to the secondary was %s: making it again",
        record.instance,
        record.backup_id,
        killed,
    )
    return True


def take_over_abandoned(
    vault: OpenVault,
    jobs: JobStore,
    instance: BackupInstance,
    who: str,
    retry: datetime | None,
    kind: Callable[[datetime], BackupType | None],
) -> list[RunOutcome]:
    """Take over each claim whose holder is provably gone (claims.take_over, once): the
    scheduled slot `retry` (the newest, when no later one is due) runs again; any other is
    recorded failed, its next slot catching up."""
    outcomes = []
    for record in list(vault.store.runs(instance.name)):
        if record.interrupted:  # released by its stopped agent: runs again while the newest
            if record.trigger is RunTrigger.SCHEDULED and record.slot == retry:
                taken = take_over(vault.store, record, record.interrupted, who)
                if taken is not None:
                    outcomes.append(run_claimed(vault, jobs, instance, taken, kind(taken.slot)))
            continue
        reason = abandoned_reason(vault.store, record)
        taken = None if reason is None else take_over(vault.store, record, reason, who)
        if taken is None:
            continue
        if taken.trigger is RunTrigger.SCHEDULED and taken.slot == retry:
            outcomes.append(run_claimed(vault, jobs, instance, taken, kind(taken.slot)))
            continue
        ended = replace(
            taken,
            state=RunState.FAILED,
            finished=_now(),
            error=f"abandoned: {taken.abandoned}",
            abandoned=None,  # not retried: the failure is the run's own (job-failed)
        )
        vault.store.update_run(ended)
        outcome = RunOutcome(ended.instance, ended.slot, ended.trigger, ended.tag, True, ended)
        outcomes.append(outcome)
    return outcomes


def failure_text(exc: Exception) -> str:
    """What a run record or a pass says of an error: a PgvaultError's own words, else the
    bug's type and text (its traceback is logged at debug level, shown with -vv)."""
    cause = own_cause(exc)
    if cause is not None:
        return str(cause)
    log.debug("unexpected error", exc_info=exc)
    return redact(f"unexpected error: {type(exc).__name__}: {exc}")


def copy_to_secondary(
    vault: OpenVault, jobs: JobStore, instance: BackupInstance, backup_id: str
) -> SecondaryCopy:
    """Copy a new backup (its parents, the WAL it needs) to the secondary as a copy job.

    The backup's run stays SUCCEEDED when the copy fails: the backup exists; the failure is
    the pass's error, and `pgvault copy` run again (or the next backup's copy of an
    incremental's chain) completes it. A stop signal cancels it (`interrupted`): the next
    pass makes it (redo_interrupted_copies).
    """
    from core.copy.job import COPY, CopyRequest
    from core.urls import parse_location

    target = instance.secondary_destination or ""
    stopped = stop_reason()
    if stopped is not None:  # the stop came as the backup ended: the copy is not started
        return SecondaryCopy(target, None, f"not made: {stopped}", stopped)
    request = CopyRequest(
        location=vault.location,
        server=instance.server_name,
        target=parse_location(target),
        backups=(backup_id,),
        store_config=vault.config,
    )
    try:  # stopped as a backup is: cancelled, nothing it left listed as a copy
        outcome = _run_stoppable(jobs, COPY, request)
    except PgvaultError as exc:
        log.error(
            "%s: the copy of backup %s to %s failed: %s", instance.name, backup_id, target, exc
        )
        return SecondaryCopy(target, None, str(exc))
    job = outcome.job
    if job.state is JobState.SUCCEEDED:
        log.info("%s: backup %s copied to %s", instance.name, backup_id, target)
        return SecondaryCopy(target, str(job.id))
    stopped = stop_reason() if job.state is JobState.CANCELLED else None
    if stopped is not None:
        return SecondaryCopy(target, str(job.id), f"cancelled: {stopped}", stopped)
    error = job.error or str(outcome.error)
    # its own lines are in its log (job_lines_in_job_log): the end is said in one line
    log.error(
        "%s: the copy of backup %s to %s failed: %s (its log: pgvault --batch jobs log %s)",
        instance.name,
        backup_id,
        target,
        error,
        job.id,
    )
    return SecondaryCopy(target, str(job.id), error)


def _run_job(
    vault: OpenVault, jobs: JobStore, instance: BackupInstance, kind: BackupType | None
) -> tuple[Outcome, Callable[[Job], str]]:
    """The rule's backup as a foreground job, and how to read its backup ID."""
    if kind is BackupType.LOGICAL:
        return _run_logical(vault, jobs, instance)
    from core.backup.job import BACKUP
    from core.backup.request import make_backup_request
    from core.jobs.results import BackupJobResult

    request = make_backup_request(
        vault.location,
        instance.server_name,
        store_config=vault.backup_config,
        connection=connection_for(instance),
        # a slot's backup should start at its slot, not after a spread checkpoint
        immediate_checkpoint=True,
        # on the server's latest chain; a full backup (saying why) when it cannot be trusted
        incremental="incremental" if kind is BackupType.INCREMENTAL else None,
    )
    outcome = _run_stoppable(jobs, BACKUP, request)
    return outcome, lambda job: job.result_as(BackupJobResult).backup_id


def _run_logical(
    vault: OpenVault, jobs: JobStore, instance: BackupInstance
) -> tuple[Outcome, Callable[[Job], str]]:
    """A Logical rule: pg_dump of the datasource's database (Azure's datasource is one)."""
    from core.jobs.results import LogicalJobResult
    from core.logical.jobs import LOGICAL_BACKUP
    from core.logical.request import LogicalBackupRequest

    request = LogicalBackupRequest(
        location=vault.location,
        server=instance.server_name,
        database=datasource_database(instance),
        store_config=vault.backup_config,
        connection=connection_for(instance),
    )
    outcome = _run_stoppable(jobs, LOGICAL_BACKUP, request)
    return outcome, lambda job: job.result_as(LogicalJobResult).backup_id


def _run_stoppable(jobs: JobStore, kind: JobKind[R], request: R) -> Outcome:
    """A job in the foreground, cancelled (as `jobs cancel` does) when the agent is stopped
    (core.protection.stopping). Its lines go to its job log; stderr shows its warnings, and
    its errors only at -v (its end is said in one line by the caller)."""
    try:
        with job_lines_in_job_log():
            return run_foreground(jobs, kind, request, on_start=STOP.watch, capture_logging=True)
    finally:
        STOP.forget()


#: lines always shown meanwhile: the agent's own (its passes, claims, Object Lock checks),
#: and the locks it shares with other agents and hosts (a server lock taken over or lost)
SHOWN_LOGGERS = ("pgvault.protection", "pgvault.lock")


class _JobLinesOff(logging.Filter):
    """Holds back the running job's errors (its end, said in one line by the caller) and,
    once the agent is stopping, all its lines (the stop is said in one line too). Its
    warnings before that show: an operator waiting on `adhoc-backup` must see that
    archive_command fails. The SHOWN_LOGGERS', the claim-renewal thread's (the agent's) and
    other libraries' lines always show."""

    def filter(self, record: logging.LogRecord) -> bool:
        if any(record.name == n or record.name.startswith(n + ".") for n in SHOWN_LOGGERS):
            return True
        if record.threadName == CLAIM_THREAD or not record.name.startswith("pgvault"):
            return True
        return record.levelno < logging.ERROR and stop_reason() is None


@contextmanager
def job_lines_in_job_log() -> Iterator[None]:
    """At the default verbosity (or -q), the job's errors, and its lines once the agent is
    stopping, stay off stderr meanwhile (_JobLinesOff)."""
    root = logging.getLogger()
    if root.getEffectiveLevel() < logging.WARNING:  # -v: they show as well
        yield
        return
    quiet, handlers = _JobLinesOff(), list(root.handlers)
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)


def datasource_database(instance: BackupInstance) -> str:
    """The dbname of the instance's conninfo: the database a Logical rule dumps."""
    try:
        dbname = psycopg2.extensions.parse_dsn(instance.datasource.conninfo).get("dbname")
    except psycopg2.ProgrammingError:
        dbname = None
    if not dbname:
        raise InputError(
            f"backup instance {instance.name}: a Logical backup rule dumps the datasource's "
            "database, and its conninfo names none (add dbname=NAME)"
        )
    return str(dbname)


def delete_backup(vault: OpenVault, jobs: JobStore, server: str, backup_id: str) -> str | None:
    """Delete one backup (and the WAL only it needed) as a delete job; the error, or None.
    ServerBusy is raised: another deletion (another agent's pass) holds the server's lock."""
    from core.catalog.delete import DeleteRequest
    from core.logical.layout import is_logical_id

    if is_logical_id(backup_id):
        return _delete_logical(vault, server, backup_id)
    from core.catalog.delete_job import DELETE

    request = DeleteRequest(
        location=vault.location,
        server=server,
        store_config=vault.config,
        backup=backup_id,
        # a lock the plan did not foresee (a legal hold) refuses the job: never delete early
        check_object_lock=vault.location.provider is Provider.S3,
    )
    outcome = run_foreground(jobs, DELETE, request, capture_logging=True)
    if outcome.job.state is JobState.SUCCEEDED:
        return None
    if isinstance(outcome.error, ServerBusy):
        raise outcome.error
    return outcome.job.error or str(outcome.error)


def still_in_catalog(vault: OpenVault, server: str, backup_id: str) -> bool:
    """Whether a backup whose deletion failed is still in the catalog."""
    from core.catalog.reader import Catalog
    from core.logical.catalog import list_logical
    from core.logical.layout import is_logical_id

    store = vault.store.store
    if is_logical_id(backup_id):
        return any(m.backup_id == backup_id for m in list_logical(store, server))
    return any(info.backup_id == backup_id for info in Catalog(store, server).backups())


def delete_failed_children(
    vault: OpenVault, jobs: JobStore, server: str, children: list[str]
) -> str | None:
    """Delete the FAILED incrementals built on a backup retention deletes (newest first; a
    delete job refuses a parent while they are there); the first error, or None."""
    if not children:
        return None
    from core.catalog.reader import Catalog

    present = {info.backup_id for info in Catalog(vault.store.store, server).backups()}
    for child in sorted(set(children) & present, reverse=True):
        error = delete_backup(vault, jobs, server, child)
        if error is not None:
            return f"deleting failed incremental backup {child} built on it: {error}"
        log.info("deleted failed incremental backup %s of %s", child, server)
    return None


def _delete_logical(vault: OpenVault, server: str, backup_id: str) -> str | None:
    """A logical backup: its own series, no WAL (what backup-delete -b ID does)."""
    return delete_logical_in(vault.store.store, server, backup_id)


def delete_logical_in(store: ObjectStore, server: str, backup_id: str) -> str | None:
    """Delete a logical backup in `store` unless it is locked; the error, or None."""
    from core.logical.catalog import delete_logical
    from core.protection.locks import backup_locks

    try:
        locked = backup_locks(store, server, backup_id)
        if locked:
            return f"logical backup {backup_id} is under S3 Object Lock: {locked[0].describe()}"
        delete_logical(store, server, backup_id)
    except PgvaultError as exc:
        return str(exc)
    log.info("deleted logical backup %s of %s", backup_id, server)
    return None


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


__all__ = [
    "RunOutcome",
    "SecondaryCopy",
    "connection_for",
    "copy_to_secondary",
    "delete_backup",
    "delete_failed_children",
    "delete_logical_in",
    "failure_text",
    "job_lines_in_job_log",
    "redo_interrupted_copies",
    "run_claimed",
    "still_in_catalog",
    "take_backup",
    "take_over_abandoned",
]
