"""A policy run against an injected clock: every slot, the tag each backup gets, and when
each one is moved or deleted. No sleeping and no backups taken; the agent makes the same
decisions with the same functions (schedule.due, tagging.choose_tag, plan_retention,
chain_rule.slot_kind: an Incremental rule's backups build chains that hold their parents).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from enum import StrEnum

from core.protection.chain_rule import slot_kind
from core.protection.policy import BackupPolicy, BackupType, DataStoreType, ScheduleTrigger
from core.protection.retention import Action, BackupPoint, Step, plan_retention
from core.protection.schedule import compile_schedule
from core.protection.simulate_live import LiveBackups
from core.protection.tagging import choose_tag
from core.protection.zones import get_zone, require_aware


class EventKind(StrEnum):
    BACKUP = "backup"
    COPY = "copy"
    MOVE = "move"
    DELETE = "delete"


@dataclass(frozen=True)
class Event:
    """Something the policy does at an instant."""

    at: datetime
    kind: EventKind
    backup_id: str
    tag: str
    store: DataStoreType
    target: DataStoreType | None = None
    #: a backup event of an Incremental rule: Full or Incremental
    backup_type: BackupType | None = None


@dataclass(frozen=True)
class Simulation:
    """The events of a simulated period, in time order."""

    events: tuple[Event, ...]

    def kept_at(self, instant: datetime) -> dict[str, frozenset[DataStoreType]]:
        """Which backups exist at an instant (events at that instant applied), and where."""
        where: dict[str, set[DataStoreType]] = {}
        for event in self.events:
            if event.at > instant:
                break
            stores = where.setdefault(event.backup_id, set())
            _apply(stores, event.kind, event.store, event.target)
            if not stores:
                del where[event.backup_id]
        return {backup_id: frozenset(stores) for backup_id, stores in where.items()}

    def backups(self) -> list[Event]:
        return [event for event in self.events if event.kind is EventKind.BACKUP]


def backup_id_for(instant: datetime) -> str:
    """A barman-style backup id for a simulated backup at instant."""
    return instant.astimezone(UTC).strftime("%Y%m%dT%H%M%S")


def simulate(
    policy: BackupPolicy,
    start: datetime,
    end: datetime,
    rule: str | None = None,
    existing: Iterable[BackupPoint] = (),
) -> Simulation:
    """Run the policy's schedule and lifecycles over [start, end) with every slot succeeding
    (`existing`: backups taken before start)."""
    backup_rule = policy.backup_rule(rule)
    trigger = backup_rule.trigger
    if not isinstance(trigger, ScheduleTrigger):
        raise ValueError(f"rule {backup_rule.name!r} has no schedule")
    zone = get_zone(trigger.schedule.time_zone)
    schedule = compile_schedule(
        trigger.schedule.repeating_time_intervals, trigger.schedule.time_zone
    )
    live = LiveBackups(policy, zone)
    for point in existing:
        live.add(point)
    # backup id -> the backups its chain restores first (an Incremental rule's chains)
    chains: dict[str, tuple[str, ...]] = {}
    events = [
        Event(p.taken_at, EventKind.BACKUP, p.backup_id, p.tag, store)
        for p in live.points.values()
        for store in sorted(p.stores)
    ]
    slots = iter(schedule.occurrences(require_aware(start), require_aware(end)))
    slot = next(slots, None)
    clock = require_aware(start)
    while True:
        plan = plan_retention(policy, live.acting(clock), clock, _needing(chains, live.points))
        for step in plan.due:
            events.append(_event(step, live.points[step.backup_id].tag, clock))
            live.apply(step)
        live.settle(clock)
        # what is applied now cannot bring a later step forward
        due = min((t for t in (plan.next_due, live.next_waiting()) if t), default=None)
        if slot is not None and (due is None or slot <= due):
            tag = choose_tag(trigger.tagging_criteria, slot, live.earlier_dates(), zone)
            point = BackupPoint(
                backup_id_for(slot), slot, tag.tag_name, frozenset({backup_rule.data_store})
            )
            kind = _chain(backup_rule.backup_type, point, live, chains, zone)
            live.add(point)
            events.append(
                Event(
                    slot,
                    EventKind.BACKUP,
                    point.backup_id,
                    point.tag,
                    backup_rule.data_store,
                    backup_type=kind,
                )
            )
            clock, slot = slot, next(slots, None)
        elif due is not None and due < end:
            clock = due
        else:
            return Simulation(tuple(sorted(events, key=lambda e: e.at)))


def _chain(
    rule_type: BackupType | None,
    point: BackupPoint,
    live: LiveBackups,
    chains: dict[str, tuple[str, ...]],
    zone: tzinfo,
) -> BackupType | None:
    """The kind of a new simulated backup; an incremental joins the newest backup's chain."""
    if rule_type is not BackupType.INCREMENTAL:
        return None
    fulls = [live.points[b].taken_at for b in live.fulls(chains)]
    kind = slot_kind(rule_type, point.taken_at, fulls, zone)
    newest = live.newest()
    if kind is BackupType.INCREMENTAL and newest is not None and newest.backup_id in chains:
        chains[point.backup_id] = (*chains[newest.backup_id], newest.backup_id)
    else:
        kind = BackupType.FULL
        chains[point.backup_id] = ()
        live.full_ids.append(point.backup_id)
    return kind


def _needing(
    chains: dict[str, tuple[str, ...]], points: dict[str, BackupPoint]
) -> Callable[[str], list[str]]:
    """retention's `dependents`: the live backups whose chain holds a backup."""
    return lambda backup_id: [b for b, c in chains.items() if backup_id in c and b in points]


def _event(step: Step, tag: str, clock: datetime) -> Event:
    """The event of a step applied at clock (its due time, or later when it was held)."""
    return Event(
        max(step.due, clock),
        EventKind(str(step.action)),
        step.backup_id,
        tag,
        step.store,
        step.target,
    )


def _apply(
    stores: set[DataStoreType], kind: EventKind, store: DataStoreType, target: DataStoreType | None
) -> None:
    if kind is EventKind.BACKUP:
        stores.add(store)
        return
    if target is not None:
        stores.add(target)
    if kind is not EventKind.COPY:
        stores.discard(store)


__all__ = ["Action", "Event", "EventKind", "Simulation", "backup_id_for", "simulate"]
