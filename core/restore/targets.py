"""Recovery targets: parsing them, and choosing the backup a point-in-time restore starts from.

Choosing follows barman-cloud-restore's `auto` rules (reference §5.1), for `auto` and for
`latest` alike, among DONE backups only: with a target time, the newest backup whose
end_time is not after it; with a target LSN, the newest whose end_xlog is not after it;
and only backups on the history of the timeline recovery follows (core.wal.timelines: N
for `--target-tli N`, the backup's own for `current`, else the newest the archive's history
files lead to, PostgreSQL's default since 12); PostgreSQL refuses to start from any other
("requested timeline N is not a child of this server's history"), and a backup named
explicitly off that history is bad input. Recovery can only stop after the backup's end
(where the data becomes consistent), so a backup named explicitly must have ended before a
time or LSN target. Targets by transaction ID or restore point name say nothing comparable:
`latest` is then simply the newest backup on the history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from core.catalog.backup_info import DONE, BackupInfo
from core.catalog.browse import no_backups_here
from core.catalog.chains import ancestors, parent_links
from core.catalog.reader import LATEST, Catalog
from core.errors import InputError, OperationFailed
from core.names import check_line_safe
from core.postgres.walnames import HistoryEntry, format_lsn, is_history, parse_lsn
from core.storage import ObjectInfo
from core.timeparse import parse_local_time
from core.wal.check import read_histories
from core.wal.timelines import followed_timeline, on_history

ACTIONS = ("pause", "promote", "shutdown")
DEFAULT_ACTION = "pause"
MAX_NAME = 63  # PostgreSQL's limit for a restore point name (MAXFNAMELEN - 1)
FIRST_NORMAL_XID = 3  # PostgreSQL's FirstNormalTransactionId
MAX_FULL_XID = 2**64 - 1  # recovery_target_xid also takes an epoch-qualified 64-bit ID
MAX_TIMELINE = 2**32 - 1  # TimeLineID is a uint32


@dataclass(frozen=True)
class RecoveryTarget:
    """Where recovery stops and what the server does there; every field optional."""

    time: str | None = None  # ISO 8601 with a UTC offset (normalised by parse_time)
    lsn: str | None = None  # X/X
    xid: str | None = None  # decimal
    name: str | None = None  # a restore point
    immediate: bool = False  # stop as soon as the backup is consistent
    timeline: str | None = None  # 'latest', 'current' or a decimal timeline
    action: str | None = None  # pause, promote, shutdown (None: pause when there is a target)
    exclusive: bool = False  # stop just before the target instead of just after

    @property
    def kind(self) -> str | None:
        for kind in ("time", "lsn", "xid", "name"):
            if getattr(self, kind) is not None:
                return kind
        return "immediate" if self.immediate else None

    @property
    def effective_action(self) -> str | None:
        if self.kind is None:
            return None
        return self.action or DEFAULT_ACTION

    def describe(self) -> str:
        kind = self.kind
        if kind is None:
            what = "the end of the WAL archive"
        elif kind == "immediate":
            what = "the end of the backup (consistency)"
        else:
            what = f"{kind} {getattr(self, kind)}"
            if self.exclusive:
                what += " (exclusive)"
        if self.timeline:
            what += f" on timeline {self.timeline}"
        action = self.effective_action
        return f"{what}, then {action}" if action else what


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; without an offset it is local time (barman's rule)."""
    return parse_local_time(text, "target time", "2026-11-21 10:15:00+00:00")


def format_time(moment: datetime) -> str:
    """A time PostgreSQL reads unambiguously (numeric offset, microseconds kept)."""
    return moment.isoformat(sep=" ")


def parse_timeline(text: str) -> str:
    """A timeline ID (1 to 2^32-1, decimal or 0x hex), current or latest."""
    value = text.strip().lower()
    if value in ("latest", "current"):
        return value
    number = None
    # ASCII only: str.isdigit() also takes '²', which int() refuses.
    if re.fullmatch(r"[0-9]+", value):
        number = int(value)
    elif re.fullmatch(r"0x[0-9a-f]+", value):
        number = int(value, 16)
    if number is not None and 0 < number <= MAX_TIMELINE:
        return str(number)
    raise InputError(f"invalid target timeline {text!r}: a positive number, current or latest")


def parse_xid(text: str) -> str:
    """A target transaction ID: a normal XID, or an epoch-qualified 64-bit one."""
    digits = text.strip()
    if not re.fullmatch(r"[0-9]+", digits) or not FIRST_NORMAL_XID <= int(digits) <= MAX_FULL_XID:
        raise InputError(f"invalid target transaction ID {text!r}")
    return str(int(digits))


def check_restore_point(name: str) -> None:
    """A restore point name PostgreSQL takes, safe in a line of postgresql.auto.conf."""
    # a newline would end the line of postgresql.auto.conf and stop PostgreSQL starting
    check_line_safe(name, "restore point name")
    if not name or len(name.encode()) > MAX_NAME:
        raise InputError(f"invalid restore point name {name!r} (1 to {MAX_NAME} bytes)")


def make_target(  # noqa: PLR0913 - one keyword for each recovery target option
    *,
    time: str | None = None,
    lsn: str | None = None,
    xid: str | None = None,
    name: str | None = None,
    immediate: bool = False,
    timeline: str | None = None,
    action: str | None = None,
    exclusive: bool = False,
) -> RecoveryTarget:
    """Validate command-line targets into a RecoveryTarget (InputError when they clash)."""
    given = [
        flag
        for flag, value in (
            ("--target-time", time),
            ("--target-lsn", lsn),
            ("--target-xid", xid),
            ("--target-name", name),
            ("--target-immediate", immediate or None),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise InputError(f"only one recovery target may be given, not {' and '.join(given)}")
    if time is not None:
        time = format_time(parse_time(time))
    if lsn is not None:
        lsn = format_lsn(parse_lsn(lsn))
    if xid is not None:
        xid = parse_xid(xid)
    if name is not None:
        check_restore_point(name)
    if timeline is not None:
        timeline = parse_timeline(timeline)
    target = RecoveryTarget(time, lsn, xid, name, immediate, timeline, action, exclusive)
    if action is not None:
        if action not in ACTIONS:
            raise InputError(f"--target-action must be one of {', '.join(ACTIONS)}")
        if target.kind is None:
            raise InputError(
                "--target-action needs a recovery target: without one, recovery replays the "
                "whole archive and the server is promoted"
            )
    if exclusive and target.kind not in ("time", "lsn", "xid"):
        raise InputError(
            "--target-exclusive applies to --target-time, --target-lsn and --target-xid"
        )
    return target


# ---- choosing the backup ------------------------------------------------------------------


@dataclass(frozen=True)
class Timelines:
    """The WAL archive's timeline history files: which exist, and those that could be read."""

    history_files: frozenset[int]
    histories: dict[int, list[HistoryEntry]]

    def followed(self, info: BackupInfo, target: RecoveryTarget) -> int:
        """The timeline recovery from `info` follows (what PostgreSQL does with our settings)."""
        return followed_timeline(
            target.timeline, info.timeline or 1, self.history_files, info.version
        )

    def holds(self, info: BackupInfo, followed: int) -> bool:
        """Whether `info` lies on `followed`'s history (else PostgreSQL refuses to start)."""
        end = info.end_xlog or info.begin_xlog
        if end is None or (followed in self.history_files and followed not in self.histories):
            return True  # a history file this host cannot read: PostgreSQL will judge
        return on_history(info.timeline or 1, parse_lsn(end), followed, self.histories)


def archive_timelines(catalog: Catalog) -> Timelines:
    """The history files at the top of the server's WAL archive, read."""
    keys = {}
    for item in catalog.store.list_entries(catalog.layout.wals_prefix, delimiter="/"):
        if isinstance(item, ObjectInfo):
            parsed = catalog.layout.parse_wal(item.key)
            if parsed is not None and is_history(parsed[0]):
                keys[parsed[0]] = item.key
    histories = read_histories(catalog.store, keys)
    return Timelines(frozenset(int(name[:8], 16) for name in keys), histories)


def off_history(info: BackupInfo, followed: int, target: RecoveryTarget) -> InputError:
    """The refusal of a backup named explicitly that the followed timeline does not hold."""
    how = f"--target-tli {target.timeline}" if target.timeline else "PostgreSQL's default, latest"
    return InputError(
        f"backup {info.backup_id} (timeline {info.timeline or 1}, WAL {info.begin_xlog} to "
        f"{info.end_xlog}) is not on the history of timeline {followed}, which recovery "
        f"follows ({how}): PostgreSQL would refuse to start ('requested timeline {followed} "
        "is not a child of this server's history'); restore a backup of that timeline's "
        "history, or follow the backup's own with --target-tli current"
    )


def _end_time(info: BackupInfo) -> datetime | None:
    end = info.end_time
    if end is not None and end.tzinfo is None:
        end = end.astimezone()
    return end


def _ended_before(info: BackupInfo, target: RecoveryTarget) -> bool:
    if target.time is not None:
        end = _end_time(info)
        return end is not None and end <= datetime.fromisoformat(target.time)
    if target.lsn is not None:
        return info.end_xlog is not None and parse_lsn(info.end_xlog) <= parse_lsn(target.lsn)
    return True


def require_ended_before(info: BackupInfo, target: RecoveryTarget) -> None:
    """Refuse a backup that ended after the recovery target: recovery cannot stop in it."""
    if not _ended_before(info, target):
        end = info.end_time.isoformat(sep=" ") if info.end_time else "an unknown time"
        raise OperationFailed(
            f"backup {info.backup_id} ended at {end} (WAL {info.end_xlog}), after the "
            f"recovery target {target.time or target.lsn}: recovery cannot stop before the "
            "end of the backup it starts from; restore an older backup, or `latest` to let "
            "pgvault choose"
        )


def choose_backup(catalog: Catalog, reference: str, target: RecoveryTarget) -> BackupInfo:
    """The backup to restore for `reference` (an ID, a name, a shortcut or auto)."""
    if not catalog.backups():
        raise OperationFailed(no_backups_here(catalog.store, catalog.server))
    if reference == "auto" or reference in LATEST:
        return _newest_for(catalog, reference, target)
    info = catalog.resolve(reference)
    if info.status != DONE:
        raise OperationFailed(
            f"backup {info.backup_id} of server {catalog.server} is {info.status}, not DONE: "
            "it cannot be restored"
        )
    require_ended_before(info, target)
    timelines = archive_timelines(catalog)
    followed = timelines.followed(info, target)
    if not timelines.holds(info, followed):
        raise off_history(info, followed, target)
    return info


def _newest_for(catalog: Catalog, reference: str, target: RecoveryTarget) -> BackupInfo:
    """The newest DONE backup with its whole chain that ended before the target and lies on
    the history of the timeline recovery from it follows."""
    if target.timeline == "current" and reference == "auto":
        raise InputError("--target-tli current needs a named backup, not auto")
    timelines = archive_timelines(catalog)
    candidates = [b for b in reversed(catalog.backups()) if b.status == DONE]
    done = {b.backup_id for b in candidates}
    parents = parent_links(catalog)
    followed = set()
    for info in candidates:
        timeline = timelines.followed(info, target)
        followed.add(timeline)
        if not timelines.holds(info, timeline):
            continue  # PostgreSQL would refuse it: not a child of the followed timeline
        if any(a not in done for a in ancestors(info.backup_id, parents)):
            continue  # a link of its chain is gone or not DONE: an older backup can do
        if _ended_before(info, target):
            return info
    wanted = []
    if target.time is not None or target.lsn is not None:
        wanted.append(f"ended before {target.time or target.lsn}")
    if followed and target.timeline != "current":
        names = ", ".join(str(t) for t in sorted(followed))
        wanted.append(f"lies on the history of timeline {names} (the timeline recovery follows)")
    condition = " and ".join(wanted) or "is DONE"
    raise OperationFailed(
        f"no backup of server {catalog.server} in {catalog.store.describe()} {condition}"
    )
