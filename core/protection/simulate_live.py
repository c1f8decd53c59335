"""The live backups of a simulation, indexed so that each instant looks only at the few
that can act then.

plan_retention over every live backup at every slot made `policy simulate` quadratic in
its slots (a PT1M schedule over 14 days took minutes). A backup can act at an instant only
once one of its planned steps is due from a store it is still in (a copy only while its
target is not there yet): until then it waits in a heap keyed by that instant, and only
the acting ones (with the newest, which retention never deletes) go to plan_retention,
which so decides as it does for the agent over all of them.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime, tzinfo

from core.protection.policy import BackupPolicy, DataStoreType
from core.protection.retention import Action, BackupPoint, Step, lifecycle_steps
from core.protection.zones import wall_time


@dataclass
class LiveBackups:
    """The simulation's backups still in a store, with when each can act next."""

    policy: BackupPolicy
    zone: tzinfo
    points: dict[str, BackupPoint] = field(default_factory=dict)
    #: each backup's whole planned life (its tag and time never change)
    planned: dict[str, list[Step]] = field(default_factory=dict)
    #: (instant, backup id): a backup that waits until then; stale entries are skipped
    waiting: list[tuple[datetime, str]] = field(default_factory=list)
    wakes: dict[str, datetime] = field(default_factory=dict)
    active: set[str] = field(default_factory=set)
    #: full backups of an Incremental rule, oldest first (deleted ones skipped when read)
    full_ids: list[str] = field(default_factory=list)
    _newest: str | None = None
    #: local dates of the live backups: tagging's "first of" needs no more
    _dates: Counter[date] = field(default_factory=Counter)
    _date_of: dict[date, datetime] = field(default_factory=dict)

    def add(self, point: BackupPoint) -> None:
        self.points[point.backup_id] = point
        rule = self.policy.retention_rule(point.tag)
        self.planned[point.backup_id] = lifecycle_steps(rule, point)
        newest = self.newest()
        if newest is None or point.taken_at > newest.taken_at:
            self._newest = point.backup_id
        day = wall_time(point.taken_at, self.zone).date()
        self._dates[day] += 1
        self._date_of.setdefault(day, point.taken_at)
        self._wait(point.backup_id)

    def newest(self) -> BackupPoint | None:
        return self.points.get(self._newest) if self._newest is not None else None

    def earlier_dates(self) -> list[datetime]:
        """One instant per local date that live backups have (all before the next slot)."""
        return [self._date_of[day] for day, count in self._dates.items() if count]

    def fulls(self, chains: dict[str, tuple[str, ...]]) -> list[str]:
        return [b for b in self.full_ids if b in self.points and not chains.get(b)]

    def acting(self, clock: datetime) -> list[BackupPoint]:
        """The backups that can act at clock, and the newest (which retention compares)."""
        while self.waiting and self.waiting[0][0] <= clock:
            when, backup_id = heapq.heappop(self.waiting)
            if self.wakes.get(backup_id) == when:
                del self.wakes[backup_id]
                self.active.add(backup_id)
        found = {b: self.points[b] for b in sorted(self.active)}
        newest = self.newest()
        if newest is not None:
            found.setdefault(newest.backup_id, newest)
        return list(found.values())

    def apply(self, step: Step) -> None:
        """A step retention took: the backup's stores change, or it is gone."""
        point = self.points[step.backup_id]
        stores = set(point.stores)
        if step.target is not None:
            stores.add(step.target)
        if step.action is not Action.COPY:
            stores.discard(step.store)
        if stores:
            self.points[step.backup_id] = replace(point, stores=frozenset(stores))
            return
        del self.points[step.backup_id], self.planned[step.backup_id]
        self.active.discard(step.backup_id)
        self._dates[wall_time(point.taken_at, self.zone).date()] -= 1

    def settle(self, clock: datetime) -> None:
        """Send the backups that cannot act at clock any more back to wait."""
        for backup_id in sorted(self.active):
            wake = self._wake(backup_id)
            if wake is None or wake > clock:
                self.active.discard(backup_id)
                self._wait(backup_id)

    def next_waiting(self) -> datetime | None:
        while self.waiting and self.wakes.get(self.waiting[0][1]) != self.waiting[0][0]:
            heapq.heappop(self.waiting)
        return self.waiting[0][0] if self.waiting else None

    def _wait(self, backup_id: str) -> None:
        wake = self._wake(backup_id)
        if wake is not None:
            self.wakes[backup_id] = wake
            heapq.heappush(self.waiting, (wake, backup_id))

    def _wake(self, backup_id: str) -> datetime | None:
        """The first instant a planned step of the backup can act from where it is now."""
        stores = self.points[backup_id].stores
        return min(
            (s.due for s in self.planned[backup_id] if _can_act(s, stores)),
            default=None,
        )


def _can_act(step: Step, stores: frozenset[DataStoreType]) -> bool:
    # a copy whose target holds the backup already is skipped (retention._steps_now)
    if step.store not in stores:
        return False
    return not (step.action is Action.COPY and step.target in stores)


__all__ = ["LiveBackups"]
