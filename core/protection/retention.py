"""What a policy's lifecycles do to an instance's backups now: delete, move or copy to archive.

A backup follows the retention rule named by its tag (the default rule when no rule has
that name). A VaultStore lifecycle deletes it `deleteAfter` after it was taken; with a copy
setting it is copied to the ArchiveStore at once (ImmediateCopyOption), after the custom
duration (CustomCopyOption) or when it expires (CopyOnExpiryOption: a move). An ArchiveStore
lifecycle counts its `deleteAfter` from the planned moment the backup reached the archive.
The newest good backup is never deleted; neither is a backup under an object lock or a
legal hold, one the operator keeps (`backup-keep`), or one that a kept backup depends on
(the `dependents` hook, for incremental chains).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from core.protection.policy import BackupPolicy, CopyOption, DataStoreType, Lifecycle, RetentionRule
from core.protection.zones import require_aware

VAULT = DataStoreType.VAULT
ARCHIVE = DataStoreType.ARCHIVE


class Action(StrEnum):
    COPY = "copy"  # to the target store; the source copy stays
    MOVE = "move"  # to the target store; the source copy goes
    DELETE = "delete"  # from the store


@dataclass(frozen=True)
class BackupPoint:
    """One good backup of an instance as retention sees it."""

    backup_id: str
    taken_at: datetime
    tag: str
    stores: frozenset[DataStoreType] = frozenset({VAULT})
    #: an object lock (immutability) keeps it until then
    locked_until: datetime | None = None
    #: objects under an S3 legal hold: kept, with no end date, until the hold is removed
    legal_holds: int = 0
    #: the operator keeps it (`backup-keep`: full or standalone) until released
    kept: str | None = None


@dataclass(frozen=True, order=True)
class Step:
    """One lifecycle action on one backup, due at a time."""

    due: datetime
    backup_id: str
    action: Action
    store: DataStoreType
    target: DataStoreType | None = None
    rule: str = field(default="", compare=False)


@dataclass(frozen=True)
class Held:
    """A step that is due but held back, and why; `until` when that is known."""

    step: Step
    reason: str
    until: datetime | None = None


@dataclass(frozen=True)
class RetentionPlan:
    """Due steps to apply now (in order), held ones, and each backup's next future step."""

    now: datetime
    due: tuple[Step, ...]
    held: tuple[Held, ...]
    upcoming: tuple[Step, ...]

    @property
    def next_due(self) -> datetime | None:
        times = [s.due for s in self.upcoming] + [h.until for h in self.held if h.until]
        return min(times, default=None)


Dependents = Callable[[str], Iterable[str]]


def lifecycle_steps(rule: RetentionRule, point: BackupPoint) -> list[Step]:
    """The whole planned life of a backup under a rule, in time order."""
    taken = require_aware(point.taken_at, "taken_at")
    vault = _lifecycle(rule, VAULT)
    archive = _lifecycle(rule, ARCHIVE)
    steps: list[Step] = []
    archived_at: datetime | None = None
    if vault is not None:
        expiry = vault.delete_after.add_to(taken)
        copy = next((c for c in vault.copy_settings if c.data_store is ARCHIVE), None)
        if copy is None:
            steps.append(Step(expiry, point.backup_id, Action.DELETE, VAULT, None, rule.name))
        elif copy.copy_after is CopyOption.ON_EXPIRY:
            archived_at = expiry
            steps.append(Step(expiry, point.backup_id, Action.MOVE, VAULT, ARCHIVE, rule.name))
        else:
            archived_at = copy.duration.add_to(taken) if copy.duration else taken
            steps.append(Step(archived_at, point.backup_id, Action.COPY, VAULT, ARCHIVE, rule.name))
            steps.append(Step(expiry, point.backup_id, Action.DELETE, VAULT, None, rule.name))
    if archive is not None:
        start = archived_at or taken
        steps.append(
            Step(
                archive.delete_after.add_to(start),
                point.backup_id,
                Action.DELETE,
                ARCHIVE,
                None,
                rule.name,
            )
        )
    return sorted(steps)


def _lifecycle(rule: RetentionRule, store: DataStoreType) -> Lifecycle | None:
    return next((item for item in rule.lifecycles if item.source_data_store is store), None)


def plan_retention(
    policy: BackupPolicy,
    backups: Sequence[BackupPoint],
    now: datetime,
    dependents: Dependents | None = None,
) -> RetentionPlan:
    """Which lifecycle steps are due at `now` for these backups (one instance's good ones).

    `dependents(backup_id)` names the backups that need this one to restore (an
    incremental's parent); None means every backup stands alone (full backups).
    """
    now = require_aware(now, "now")
    newest = max(backups, key=lambda b: b.taken_at, default=None)
    due: list[Step] = []
    upcoming: list[Step] = []
    gone: set[str] = set()
    for point in backups:
        now_steps, later, left = _steps_now(policy.retention_rule(point.tag), point, now)
        due.extend(now_steps)
        upcoming.extend(later[:1])
        if not left and point.kept is None:  # a kept backup stays, and so does its chain
            gone.add(point.backup_id)
    by_id = {point.backup_id: point for point in backups}
    # the newest stays whatever its lifecycle says, and so does the chain it builds on
    newest_would_go = newest is not None and newest.backup_id in gone
    if newest is not None:
        gone.discard(newest.backup_id)
    kept_due: list[Step] = []
    held: list[Held] = []
    for step in sorted(due):
        point = by_id[step.backup_id]
        hold = _hold(step, point, point is newest and newest_would_go, now, gone, dependents)
        if hold is None:
            kept_due.append(step)
        else:
            held.append(hold)
    return RetentionPlan(now, tuple(kept_due), tuple(held), tuple(sorted(upcoming)))


def _steps_now(
    rule: RetentionRule, point: BackupPoint, now: datetime
) -> tuple[list[Step], list[Step], set[DataStoreType]]:
    """The steps due now given where the backup is, the future ones, and where it is left."""
    stores = set(point.stores)
    planned = lifecycle_steps(rule, point)
    due_now = [s for s in planned if s.due <= now]
    later = [s for s in planned if s.due > now]
    result: list[Step] = []
    for step in due_now:
        if step.store not in stores:
            continue
        if step.target is not None:
            # A copy whose target copy is already due for deletion is not worth making.
            doomed = any(s.action is Action.DELETE and s.store is step.target for s in due_now)
            if doomed or step.target in stores:
                if step.action is Action.MOVE:
                    stores.discard(step.store)
                    result.append(replace(step, action=Action.DELETE, target=None))
                continue
            stores.add(step.target)
        if step.action is not Action.COPY:
            stores.discard(step.store)
        result.append(step)
    return result, later, stores


def _hold(
    step: Step,
    point: BackupPoint,
    newest_would_go: bool,
    now: datetime,
    gone: set[str],
    dependents: Dependents | None,
) -> Held | None:
    """Why a due delete or move must wait, or None when it may go ahead."""
    if step.action is Action.COPY:
        return None
    if step.action is Action.DELETE and newest_would_go:
        return Held(step, "the newest good backup is never deleted")
    own = _own_hold(step, point, now)
    if own is not None:
        return own
    if step.action is Action.DELETE and dependents is not None and point.backup_id in gone:
        needed = sorted(d for d in dependents(point.backup_id) if d not in gone)
        if needed:
            return Held(step, f"backups {', '.join(needed)} depend on it")
    return None


def _own_hold(step: Step, point: BackupPoint, now: datetime) -> Held | None:
    """What holds the backup itself: a legal hold, an object lock, the operator's keep."""
    if point.legal_holds:
        objects = "1 object" if point.legal_holds == 1 else f"{point.legal_holds} objects"
        return Held(step, f"legal hold on {objects} (held until the hold is removed)")
    if point.locked_until is not None and require_aware(point.locked_until) > now:
        return Held(step, f"locked until {point.locked_until.isoformat()}", point.locked_until)
    if step.action is Action.DELETE and point.kept is not None:
        return Held(
            step, f"kept by backup-keep ({point.kept}) until released with backup-keep --release"
        )
    return None
