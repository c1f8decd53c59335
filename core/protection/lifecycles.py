"""Apply an instance's retention lifecycles: move to the archive tier, copy, delete.

The ArchiveStore is the store's archive tier (core.catalog.tier): a move changes the
backup's archives to it in place. pgvault keeps one copy of a backup in a destination, so
the ArchiveStore copy (ImmediateCopyOption, CustomCopyOption) is made when the VaultStore
copy expires, as a move; until then the copy step is reported held. For an instance with a
secondary destination the copy step also makes a real second copy there, at its time
(unless the catalog records one already, core.catalog.copies): a copy that failed after
the backup is made again here. The ArchiveStore lifecycle then deletes it by an ordinary
delete job, which keeps the WAL other backups need. With `--secondary-retention follow`
each deletion is repeated in the secondary destination (core.protection.secondary_retention),
reported as its own outcome whose store is the secondary's URL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from core.catalog.backup_info import FAILED
from core.catalog.chains import dependents
from core.catalog.reader import Catalog
from core.errors import PgvaultError, ServerBusy
from core.jobs import JobStore
from core.logical.catalog import LOCKED, list_logical
from core.logical.layout import is_logical_id
from core.logical.manifest import DONE
from core.protection.locks import backup_lock_states
from core.protection.model import BackupInstance, RunState
from core.protection.policy import BackupPolicy
from core.protection.retention import (
    ARCHIVE,
    VAULT,
    Action,
    BackupPoint,
    RetentionPlan,
    Step,
    plan_retention,
)
from core.protection.runs import (
    copy_to_secondary,
    delete_backup,
    delete_failed_children,
    still_in_catalog,
)
from core.protection.secondary_retention import (
    delete_at_secondary,
    follows,
    recorded_at_secondary,
)
from core.protection.service import OpenVault
from core.protection.stopping import stop_reason

log = logging.getLogger("pgvault.protection")
COPY_IN_PLACE = (
    "pgvault keeps one copy of a backup: it moves to the archive tier when its VaultStore "
    "copy expires"
)


@dataclass(frozen=True)
class RetentionOutcome:
    """One lifecycle step: done, held (and why) or failed."""

    instance: str
    backup_id: str
    action: str
    store: str
    result: str  # done, held, failed
    reason: str | None = None
    #: when a held step may go ahead, when known (an object lock's end)
    until: datetime | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.action,
            "backupId": self.backup_id,
            "instance": self.instance,
            "reason": self.reason,
            "result": self.result,
            "store": self.store,
            "until": self.until.isoformat() if self.until else None,
        }


def secondary_failures(instance: BackupInstance, outcomes: list[RetentionOutcome]) -> list[str]:
    """A deletion in the secondary that failed (`follow`) fails the pass."""
    second = instance.secondary_destination
    return [
        f"{instance.name}: deleting backup {o.backup_id} in {second}: {o.reason}"
        for o in outcomes
        if second and o.store == second and o.result == "failed"
    ]


def backup_points(vault: OpenVault, instance: BackupInstance) -> list[BackupPoint]:
    """The instance's successful backups still DONE in the catalog, with their tags."""
    catalog = Catalog(vault.store.store, instance.server_name)
    done = {info.backup_id for info in catalog.backups() if info.status == "DONE"}
    archived = catalog.archived()
    keeps = catalog.keep_targets()
    # a Logical rule's backups: finished ones have their logical.json (LOCKED: encrypted)
    done |= {
        m.backup_id
        for m in list_logical(vault.store.store, instance.server_name)
        if m.status in (DONE, LOCKED)
    }
    return [
        BackupPoint(
            run.backup_id,
            run.slot,
            run.tag or "Default",
            frozenset({ARCHIVE if run.backup_id in archived else VAULT}),
            kept=keeps.get(run.backup_id),
        )
        for run in vault.store.runs(instance.name)
        if run.state is RunState.SUCCEEDED and run.backup_id in done
    ]


def apply_retention(
    vault: OpenVault,
    jobs: JobStore,
    instance: BackupInstance,
    policy: BackupPolicy,
    now: datetime,
) -> list[RetentionOutcome]:
    """Apply the due lifecycle steps (move to archive, delete); report what is held and why."""
    catalog = Catalog(vault.store.store, instance.server_name)
    backups = catalog.backups()
    # an interrupted incremental (FAILED, or ABANDONED: not yet marked FAILED, as where no
    # host holds the key) restores nothing: it holds no chain, and goes before its parent
    failed = {b.backup_id for b in backups if b.status == FAILED} | catalog.abandoned(backups)
    chains = dependents(catalog)
    needs = {b: [d for d in ds if d not in failed] for b, ds in chains.items()}
    dead = {b: [d for d in ds if d in failed] for b, ds in chains.items()}
    points = backup_points(vault, instance)
    plan = plan_retention(policy, points, now, lambda b: needs.get(b, ()))
    # A backup due to go is first checked for an object lock or a legal hold: held, never
    # deleted early nor tried (a delete job would only fail on it).
    going = [step.backup_id for step in plan.due if step.action is not Action.COPY]
    locks = backup_lock_states(vault.store.store, instance.server_name, going, now)
    if locks:
        points = [
            replace(p, locked_until=lock.until, legal_holds=lock.legal_holds)
            if (lock := locks.get(p.backup_id))
            else p
            for p in points
        ]
        plan = plan_retention(policy, points, now, lambda b: needs.get(b, ()))
    results = _held(instance, plan)
    copying = {s.backup_id for s in plan.due if s.action is Action.COPY}
    copies = _secondary_copies(vault, instance) if copying else {}
    # --secondary-retention follow: read where copies are before deleting (a deletion drops
    # the backup's entry from the copies record)
    recorded, unread = _recorded_copies(vault, instance, plan)
    deleted: list[str] = []
    # an incremental goes before the backups it builds on: a parent is deleted last
    for step in sorted(plan.due, key=lambda s: s.backup_id, reverse=True):
        if stop_reason() is not None:  # stopped: nothing more is started; the next pass
            break
        if step.action is Action.COPY:
            outcome = _copy_step(vault, jobs, instance, plan, step, copies)
            results += [outcome] if outcome is not None else []
            continue
        if step.action is Action.MOVE or (step.store is VAULT and step.backup_id in copying):
            moved = (instance.name, step.backup_id, str(Action.MOVE), str(step.store))
            refusal = _no_archive_tier(vault, step.backup_id)
            if refusal is not None:
                results.append(RetentionOutcome(*moved, "held", refusal))
                continue
            error = _move_to_archive(vault, instance.server_name, step.backup_id)
            results.append(RetentionOutcome(*moved, "failed" if error else "done", error))
            continue
        outcome = _delete_step(vault, jobs, instance, step, dead.get(step.backup_id, []))
        results += [outcome] if outcome is not None else []
        deleted += [step.backup_id] if outcome is not None and outcome.result == "done" else []
    if follows(instance):
        results += _follow_at_secondary(vault, jobs, instance, deleted, (recorded, unread), now)
    return results


def _delete_step(
    vault: OpenVault, jobs: JobStore, instance: BackupInstance, step: Step, failed: list[str]
) -> RetentionOutcome | None:
    """A due deletion: the FAILED incrementals built on the backup first, then the backup.
    Held while another agent's deletion holds the server's lock; None when the backup went
    meanwhile (another agent's pass, or by hand): nothing failed."""
    base = (instance.name, step.backup_id, str(step.action), str(step.store))
    server = instance.server_name
    try:
        error = delete_failed_children(vault, jobs, server, failed)
        error = error or delete_backup(vault, jobs, server, step.backup_id)
    except ServerBusy as busy:
        return RetentionOutcome(*base, "held", f"{busy}; the next pass tries again")
    if error is not None and not still_in_catalog(vault, server, step.backup_id):
        return None
    return RetentionOutcome(*base, "failed" if error else "done", error)


def _held(instance: BackupInstance, plan: RetentionPlan) -> list[RetentionOutcome]:
    return [
        RetentionOutcome(
            instance.name,
            h.step.backup_id,
            str(h.step.action),
            str(h.step.store),
            "held",
            h.reason,
            h.until,
        )
        for h in plan.held
    ]


def _recorded_copies(
    vault: OpenVault, instance: BackupInstance, plan: RetentionPlan
) -> tuple[set[str], str | None]:
    """With `follow`, the backups the copies record lists in the secondary (and why it
    could not be read, if so); nothing to read when no deletion is due."""
    if not follows(instance) or not any(s.action is Action.DELETE for s in plan.due):
        return set(), None
    try:
        return recorded_at_secondary(vault, instance), None
    except PgvaultError as exc:  # never blocks the primary's deletions
        return set(), str(exc)


def _follow_at_secondary(
    vault: OpenVault,
    jobs: JobStore,
    instance: BackupInstance,
    deleted: list[str],
    seen: tuple[set[str], str | None],
    now: datetime,
) -> list[RetentionOutcome]:
    """The secondary's deletions that follow the primary's, each its own outcome (store:
    the secondary's URL); one that fails fails the pass, the primary's stays done. `seen`:
    the copies recorded there before the deletions, or why the record could not be read."""
    recorded, unread = seen
    store = instance.secondary_destination or "secondary"
    results = [
        RetentionOutcome(
            instance.name,
            backup_id,
            str(Action.DELETE),
            store,
            "failed",
            f"the copies record could not be read before the deletion ({unread}): delete "
            "its copy there with backup-delete if it has one",
        )
        for backup_id in (deleted if unread else [])
    ]
    going = [b for b in deleted if b in recorded]
    for outcome in delete_at_secondary(vault, jobs, instance, going, now):
        results.append(
            RetentionOutcome(
                instance.name,
                outcome.backup_id,
                str(Action.DELETE),
                store,
                outcome.result,
                outcome.reason,
                outcome.until,
            )
        )
    return results


def _copy_step(
    vault: OpenVault,
    jobs: JobStore,
    instance: BackupInstance,
    plan: RetentionPlan,
    step: Step,
    copies: dict[str, tuple[str, ...]],
) -> RetentionOutcome | None:
    """A copy step: the real copy to the instance's secondary destination unless the catalog
    records it there already; else held (one copy per destination) until the VaultStore
    delete moves it, when that is not due now (None)."""
    base = (instance.name, step.backup_id, str(step.action), str(step.store))
    second = instance.secondary_destination
    if second and second not in copies.get(step.backup_id, ()):
        copied = copy_to_secondary(vault, jobs, instance, step.backup_id)
        if copied.error is None:
            return RetentionOutcome(*base, "done", f"copied to {second}")
        if copied.interrupted:  # not recorded as a copy: the step is due again next pass
            return RetentionOutcome(*base, "failed", f"{copied.error}; the next pass makes it")
        return RetentionOutcome(*base, "failed", copied.error)
    if _vault_delete_due(plan, step.backup_id):
        return None
    why = f"{COPY_IN_PLACE}; a second copy is in {second}" if second else COPY_IN_PLACE
    return RetentionOutcome(*base, "held", why)


def _secondary_copies(vault: OpenVault, instance: BackupInstance) -> dict[str, tuple[str, ...]]:
    """Where each backup already has copies (core.catalog.copies), for the copy steps."""
    if not instance.secondary_destination:
        return {}
    from core.catalog.copies import read_copies

    return read_copies(vault.store.store, instance.server_name)


def _vault_delete_due(plan: RetentionPlan, backup_id: str) -> bool:
    return any(_is_vault_delete(s) and s.backup_id == backup_id for s in plan.due)


def _is_vault_delete(step: Step) -> bool:
    return step.action is Action.DELETE and step.store is VAULT


def _no_archive_tier(vault: OpenVault, backup_id: str) -> str | None:
    """Why this backup cannot move to the archive tier (it then stays), or None."""
    if is_logical_id(backup_id):
        return "logical backups have no archive tier in pgvault yet: the backup stays"
    store = vault.store.store
    return store.archive_refusal if store.archive_class is None else None


def _move_to_archive(vault: OpenVault, server: str, backup_id: str) -> str | None:
    """Move one backup's archives to the archive tier; the error, or None."""
    from core.catalog.tier import archive_backup

    store = vault.store.store
    try:
        info = Catalog(store, server).get(backup_id)
        archive_backup(store, server, backup_id, info.status)
    except PgvaultError as exc:
        return str(exc)
    log.info("moved backup %s of %s to the archive tier", backup_id, server)
    return None


__all__ = [
    "COPY_IN_PLACE",
    "RetentionOutcome",
    "apply_retention",
    "backup_points",
    "secondary_failures",
]
