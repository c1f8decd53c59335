"""Retention policies as barman-cloud evaluates them, plus the FAILED backups it forgets.

Policies (reference §4.1, case-insensitive): `REDUNDANCY n` and
`RECOVERY WINDOW OF n DAY[S]|WEEK[S]|MONTH[S]` (a month is 31 days).

Evaluation (§4.2), newest DONE backup first by backup ID:
- REDUNDANCY n: the newest n DONE backups are VALID, older ones OBSOLETE; a kept backup is
  KEEP:FULL or KEEP:STANDALONE and never obsolete, but it counts towards n. n below the
  minimum redundancy is raised to it.
- RECOVERY WINDOW: the point of recoverability is now minus the window. Backups are VALID
  down to and including the first whose end_time is older than that point; older ones are
  OBSOLETE, except that while fewer than the minimum redundancy are valid they are kept
  as OBSOLETE* (potentially obsolete). Kept backups stay KEEP:... and count as valid.
- Backups that are not DONE get `-` and no policy deletes them. So does a DONE incremental
  whose chain is broken (a parent, by backup.info's links, missing or not DONE): it is no
  restorable point, so it counts for nothing (the policies count restorable points).

pgvault adds rules barman-cloud lacks (its FAILED backups pile up, §9). An interrupted
backup, FAILED or STARTED with its owner provably gone (`abandoned`, judged by the caller
with core.catalog.owner: what a kill leaves until the next backup's reaper marks it FAILED),
is removed once a newer backup is DONE (listed in `failed` or `abandoned`), and left alone
while none is: `jobs resume` may still continue it, whatever its kind (full or incremental,
plain or encrypted: a host without the key cannot mark one FAILED, so the two statuses get
one rule). A STARTED backup whose owner may be alive is never removed, and a backup whose
deletion began and was interrupted is always finished (`failed`).

The clock is an argument (`now`), so a recovery window is computed for any moment.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from core.catalog.backup_info import DONE, FAILED, STARTED, BackupInfo
from core.catalog.keep import KEEP_STANDALONE
from core.errors import InputError

VALID = "VALID"
OBSOLETE = "OBSOLETE"
POTENTIALLY_OBSOLETE = "OBSOLETE*"
KEEP_FULL = "KEEP:FULL"
KEEP_STANDALONE_STATUS = "KEEP:STANDALONE"
NONE = "-"

REDUNDANCY = "redundancy"
WINDOW = "window"

_REDUNDANCY_RE = re.compile(r"^\s*redundancy\s+(\d+)\s*$", re.IGNORECASE)
_WINDOW_RE = re.compile(
    r"^\s*recovery\s+window\s+of\s+(\d+)\s+(day|month|week)s?\s*$", re.IGNORECASE
)
_UNITS = {"day": "DAYS", "week": "WEEKS", "month": "MONTHS"}


@dataclass(frozen=True)
class RetentionPolicy:
    """A parsed policy: REDUNDANCY `value`, or RECOVERY WINDOW OF `value` `unit`."""

    kind: str  # REDUNDANCY or WINDOW
    value: int
    unit: str | None = None  # DAYS, WEEKS, MONTHS for a window

    def __str__(self) -> str:
        if self.kind == REDUNDANCY:
            return f"REDUNDANCY {self.value}"
        return f"RECOVERY WINDOW OF {self.value} {self.unit}"

    @property
    def window(self) -> timedelta:
        """The recovery window (a month is 31 days, as barman has it)."""
        if self.kind != WINDOW:
            raise ValueError("a redundancy policy has no window")
        if self.unit == "WEEKS":
            return timedelta(weeks=self.value)
        if self.unit == "MONTHS":
            return timedelta(days=31 * self.value)
        return timedelta(days=self.value)


def parse_policy(text: str) -> RetentionPolicy:
    """'REDUNDANCY 2' or 'RECOVERY WINDOW OF 4 WEEKS'; anything else is bad input (exit 3)."""
    match = _REDUNDANCY_RE.match(text)
    if match:
        return RetentionPolicy(REDUNDANCY, int(match[1]))
    match = _WINDOW_RE.match(text)
    if match:
        policy = RetentionPolicy(WINDOW, int(match[1]), _UNITS[match[2].lower()])
        try:
            policy.window  # noqa: B018 - a window longer than Python's timedelta raises here
        except OverflowError:
            raise InputError(f"invalid retention policy {text!r}: the window is too long") from None
        return policy
    raise InputError(
        f"invalid retention policy {text!r}: expected 'REDUNDANCY n' or "
        "'RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS'"
    )


@dataclass(frozen=True)
class RetentionReport:
    """What a policy says of every backup of a server, at one moment."""

    policy: RetentionPolicy
    now: datetime
    minimum_redundancy: int
    #: (backup ID, status) for every backup, oldest first
    statuses: tuple[tuple[str, str], ...]
    #: DONE backups the policy deletes, oldest first
    obsolete: tuple[str, ...]
    #: FAILED backups older than the newest DONE one, or being deleted, oldest first
    failed: tuple[str, ...]
    point_of_recoverability: datetime | None = None
    #: STARTED backups whose owner is provably gone, older than the newest DONE one
    abandoned: tuple[str, ...] = ()

    def status(self, backup_id: str) -> str:
        return dict(self.statuses).get(backup_id, NONE)

    @property
    def to_delete(self) -> tuple[str, ...]:
        """Everything the run removes, oldest first (WAL cleanup goes in that order)."""
        return tuple(sorted({*self.obsolete, *self.failed, *self.abandoned}))


def _keep_status(target: str | None) -> str | None:
    if target is None:
        return None
    return KEEP_STANDALONE_STATUS if target == KEEP_STANDALONE else KEEP_FULL


def _aware(moment: datetime) -> datetime:
    """A naive time (barman writes local times) read as local time."""
    return moment if moment.tzinfo is not None else moment.astimezone()


def _window_start(moment: datetime, window: timedelta) -> datetime:
    """`moment` minus the window; a window reaching back before year 1 keeps everything."""
    try:
        return moment - window
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def evaluate(
    policy: RetentionPolicy,
    backups: Sequence[BackupInfo],
    keeps: Mapping[str, str],
    minimum_redundancy: int = 0,
    now: datetime | None = None,
    abandoned: Collection[str] = (),
) -> RetentionReport:
    """Classify every backup under the policy; `now` defaults to the clock (local time).

    `abandoned` names the STARTED backups whose owner is provably gone: they are removed
    once a newer backup is DONE, as FAILED ones are."""
    if minimum_redundancy < 0:
        raise InputError("the minimum redundancy must be 0 or more")
    moment = _aware(now) if now is not None else datetime.now().astimezone()
    broken = broken_chains(backups)
    newest_first = sorted(
        (b if b.backup_id not in broken else replace(b, status=NONE) for b in backups),
        key=lambda b: b.backup_id,
        reverse=True,
    )
    report: dict[str, str] = {}
    point = None
    if policy.kind == REDUNDANCY:
        _by_redundancy(newest_first, keeps, max(policy.value, minimum_redundancy), report)
    else:
        point = _window_start(moment, policy.window)
        _by_window(newest_first, keeps, point, minimum_redundancy, report)
    done_ids = [b.backup_id for b in newest_first if b.status == DONE]
    newest_done = done_ids[0] if done_ids else None

    def superseded(info: BackupInfo) -> bool:
        """A newer backup is DONE: no resume of this interrupted one is waited for."""
        return newest_done is not None and info.backup_id < newest_done

    failed = tuple(
        sorted(
            b.backup_id
            for b in backups
            if b.status == FAILED and b.backup_id not in keeps and (b.deleting or superseded(b))
        )
    )
    ordered = tuple((b.backup_id, report[b.backup_id]) for b in reversed(newest_first))
    return RetentionReport(
        policy=policy,
        now=moment,
        minimum_redundancy=minimum_redundancy,
        statuses=ordered,
        obsolete=tuple(bid for bid, status in ordered if status == OBSOLETE),
        failed=failed,
        point_of_recoverability=point,
        abandoned=tuple(
            sorted(
                b.backup_id
                for b in backups
                if b.status == STARTED and b.backup_id in abandoned and superseded(b)
            )
        ),
    )


def broken_chains(backups: Sequence[BackupInfo]) -> set[str]:
    """The DONE backups whose chain lacks a link: a parent missing or not DONE."""
    by_id = {b.backup_id: b for b in backups}
    broken: set[str] = set()
    for info in backups:
        seen = {info.backup_id}
        parent = info.parent_backup_id
        while info.status == DONE and parent is not None and parent not in seen:
            link = by_id.get(parent)
            if link is None or link.status != DONE:
                broken.add(info.backup_id)
                break
            seen.add(parent)
            parent = link.parent_backup_id
    return broken


def _by_redundancy(
    newest_first: Sequence[BackupInfo],
    keeps: Mapping[str, str],
    redundancy: int,
    report: dict[str, str],
) -> None:
    counted = 0
    for info in newest_first:
        if info.status != DONE:
            report[info.backup_id] = NONE
            continue
        kept = _keep_status(keeps.get(info.backup_id))
        if kept:
            report[info.backup_id] = kept
        elif counted < redundancy:
            report[info.backup_id] = VALID
        else:
            report[info.backup_id] = OBSOLETE
        counted += 1  # kept backups count towards n, as in barman


def _by_window(
    newest_first: Sequence[BackupInfo],
    keeps: Mapping[str, str],
    point: datetime,
    minimum_redundancy: int,
    report: dict[str, str],
) -> None:
    found = False  # the first backup that ended before the point has been seen
    valid = 0
    for info in newest_first:
        if info.status != DONE:
            report[info.backup_id] = NONE
            continue
        kept = _keep_status(keeps.get(info.backup_id))
        if found:
            if valid < minimum_redundancy:
                report[info.backup_id] = kept or POTENTIALLY_OBSOLETE
                valid += 1
            else:
                report[info.backup_id] = kept or OBSOLETE
            continue
        report[info.backup_id] = kept or VALID
        valid += 1
        # A DONE backup always has an end time; one without is treated as inside the window.
        if info.end_time is not None and _aware(info.end_time) < point:
            found = True


__all__ = [
    "KEEP_FULL",
    "KEEP_STANDALONE_STATUS",
    "NONE",
    "OBSOLETE",
    "POTENTIALLY_OBSOLETE",
    "REDUNDANCY",
    "VALID",
    "WINDOW",
    "RetentionPolicy",
    "RetentionReport",
    "evaluate",
    "parse_policy",
]
