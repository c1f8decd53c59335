"""backup-delete: one backup (`-b`) or what a retention policy frees (`-r`), then its WAL.

    run_delete(DeleteRequest(...), reporter) -> DeleteResult

Order per backup: backup.info rewritten FAILED with DELETING_ERROR first (no reader, pgvault or
barman-cloud, takes a half-deleted backup for DONE; retention finishes an interrupted one),
then as barman-cloud the backup's data objects (archives, manifests, resume checkpoints), then
backup.info last (so an interrupted deletion can be run again and still finds the backup),
then its entry in the copies record (core.catalog.copies), then the WAL no longer needed
(core.wal.cleanup). A run that deletes holds the server's lock
(core.catalog.lock): resume, retention and delete of one server never interleave. A
retention run deletes oldest first, re-reading each backup's backup.info and keep annotation
just before deleting it, and skips any that changed since the policy was evaluated. Nothing
is deleted when any backup.info of the catalog is unreadable (as barman-cloud), since WAL
decisions need them all.

Refused with exit 1, as barman-cloud refuses them: a kept backup; a DONE backup when fewer
than `-m` DONE backups would remain. pgvault also refuses a STARTED backup that may still be
running (its owner is not provably gone, core.catalog.owner, or barman-cloud wrote it) unless
`force` is set; an abandoned one is deleted by `-b` and by retention. With
`check_object_lock` (S3 only; on by itself in a bucket with Object Lock enabled), a backup
with an object under S3 Object Lock is refused before
anything of the run is deleted, and WAL it frees that is still locked (`wal-archive
--immutability-days`) is kept, for a later deletion to remove.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime

from core.catalog.backup_info import DELETING_ERROR, DONE, FAILED, STARTED, BackupInfo, serialize
from core.catalog.chains import dependents
from core.catalog.copies import forget_copies
from core.catalog.layout import ServerLayout
from core.catalog.lock import server_lock
from core.catalog.objectlock import bucket_has_object_lock, locked_objects, require_object_lock
from core.catalog.reader import Catalog
from core.catalog.retention import WINDOW, RetentionReport, evaluate, parse_policy
from core.errors import InputError, OperationFailed, PgvaultError
from core.postgres.walnames import DEFAULT_SEGMENT_SIZE, Segment, is_segment
from core.progress import NullReporter, Reporter
from core.snapshots.cleanup import check_deletable, delete_snapshots
from core.storage import ObjectStore, StoreConfig, open_store
from core.timeparse import parse_local_time
from core.urls import Location, Provider
from core.wal.cleanup import WalCleanup, plan_wal_cleanup

log = logging.getLogger("pgvault.delete")


@dataclass(frozen=True)
class DeleteRequest:
    """`backup` (an ID, a name, latest...) or `policy` (barman's syntax), not both."""

    location: Location
    server: str
    store_config: StoreConfig = field(default_factory=StoreConfig)
    backup: str | None = None
    policy: str | None = None
    minimum_redundancy: int = 0
    dry_run: bool = False
    batch_size: int | None = None  # objects per delete request; None: the provider's maximum
    #: ISO 8601 time a RECOVERY WINDOW is computed from; None: the clock when the run starts
    now: str | None = None
    #: delete a STARTED backup whose process pgvault cannot prove has ended
    force: bool = False
    #: refuse, before deleting anything, when an object of a backup is under S3 Object Lock
    check_object_lock: bool = False
    #: with `backup`: also every incremental built on it, newest first
    chain: bool = False


@dataclass(frozen=True)
class BackupDeletion:
    """One backup deleted (or, in a dry run, that would be), and the WAL that went with it."""

    backup_id: str
    status: str
    why: str
    objects: tuple[str, ...]  # keys, backup.info last
    size: int
    wal: WalCleanup
    segment_size: int = DEFAULT_SEGMENT_SIZE


@dataclass(frozen=True)
class DeleteResult:
    server: str
    dry_run: bool
    report: RetentionReport | None
    deletions: tuple[BackupDeletion, ...]
    skipped: tuple[str, ...] = ()


def parse_now(text: str) -> datetime:
    """An ISO 8601 time; a time without offset is local time."""
    return parse_local_time(text, "time")


def validate_request(request: DeleteRequest) -> None:
    """Bad input (exit 3) found before anything is read or deleted."""
    ServerLayout(request.server)
    if (request.backup is None) == (request.policy is None):
        raise InputError("give one of a backup (-b) and a retention policy (-r)")
    if request.minimum_redundancy < 0:
        raise InputError("-m/--minimum-redundancy must be 0 or more")
    if request.batch_size is not None and request.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    policy = parse_policy(request.policy) if request.policy is not None else None
    if request.now is not None:
        if policy is None or policy.kind != WINDOW:
            raise InputError("--as-of applies to a RECOVERY WINDOW policy only")
        parse_now(request.now)
    if request.force and request.backup is None:
        raise InputError("--force applies to -b only (a policy never deletes a STARTED backup)")
    if request.chain and request.backup is None:
        raise InputError("--chain applies to -b only (retention never breaks a chain)")
    if request.check_object_lock:
        require_object_lock(request.location)


def run_delete(request: DeleteRequest, reporter: Reporter | None = None) -> DeleteResult:
    """Delete as asked; raises a PgvaultError subclass (with its exit code) when refused."""
    validate_request(request)
    reporter = reporter or NullReporter()
    with open_store(request.location, request.store_config) as store:
        request = _with_bucket_lock_check(request, store)
        if request.batch_size is not None:
            # Never more than the provider takes in one request (barman clamps the same way).
            store.delete_batch = min(request.batch_size, type(store).delete_batch)
        if request.dry_run:  # reads only: nothing to keep apart from
            return _Deleter(request, reporter, store).run()
        with server_lock(store, request.server, describe(public_request(request))):
            return _Deleter(request, reporter, store).run()


def _with_bucket_lock_check(request: DeleteRequest, store: ObjectStore) -> DeleteRequest:
    """On an S3 bucket with Object Lock enabled the lock check is on without the flag: a
    plain delete would only hide the locked versions behind delete markers, and the
    backup would be gone from the catalog while S3 still keeps it (one request per run)."""
    if request.check_object_lock or request.location.provider is not Provider.S3:
        return request
    return replace(request, check_object_lock=True) if bucket_has_object_lock(store) else request


class _Deleter:
    def __init__(self, request: DeleteRequest, reporter: Reporter, store: ObjectStore) -> None:
        self.request = request
        self.reporter = reporter
        self.store = store
        self.catalog = Catalog(store, request.server)
        self.layout = ServerLayout(request.server)
        self._archived: list[tuple[str, str]] | None = None

    def run(self) -> DeleteResult:
        self.reporter.phase("reading the catalog")
        backups = self.catalog.backups()
        if self.catalog.unreadable:
            raise OperationFailed(
                "cannot read the backup.info of backup(s) "
                f"{', '.join(self.catalog.unreadable)}: unsafe to delete anything "
                "while the catalog cannot be read whole"
            )
        keeps = self.catalog.keep_targets()
        dead = self.catalog.abandoned(backups)
        report: RetentionReport | None = None
        if self.request.policy is None:
            info = self.catalog.resolve(self.request.backup or "")
            targets = self._single(info, backups, keeps, dead)
        else:
            report, targets = self._by_policy(self.request.policy, backups, keeps)
            targets = self._children_first(self._keep_chains(targets))
        if self.request.check_object_lock:
            self._refuse_locked([backup_id for backup_id, _ in targets])
        deletions: list[BackupDeletion] = []
        skipped: list[str] = []
        remaining = list(backups)
        by_id = {b.backup_id: b for b in backups}
        self.reporter.set_totals(files_total=len(targets))
        for backup_id, why in targets:
            self.reporter.checkpoint()
            expected = by_id[backup_id]
            if report is not None:
                change = self._changed(expected)
                if change is not None:
                    reason, current = change
                    skipped.append(f"backup {backup_id} skipped: {reason}")
                    self.reporter.log(skipped[-1], logging.WARNING)
                    if current is not None:  # what it is now is what protects WAL
                        remaining = [b for b in remaining if b.backup_id != backup_id]
                        remaining.append(current)
                    continue
            deletion = self._delete(
                expected, why, remaining, keeps, dead, skip_if_standalone=report is None
            )
            deletions.append(deletion)
            remaining = [b for b in remaining if b.backup_id != backup_id]
            self.reporter.advance(deletion.size, files=1)
        self.reporter.phase("done")
        return DeleteResult(
            server=self.request.server,
            dry_run=self.request.dry_run,
            report=report,
            deletions=tuple(deletions),
            skipped=tuple(skipped),
        )

    def _by_policy(
        self, text: str, backups: list[BackupInfo], keeps: dict[str, str]
    ) -> tuple[RetentionReport, list[tuple[str, str]]]:
        """The policy's report, and the backups it frees with why, oldest first."""
        policy = parse_policy(text)
        now = parse_now(self.request.now) if self.request.now else None
        abandoned = self.catalog.abandoned(backups)
        report = evaluate(policy, backups, keeps, self.request.minimum_redundancy, now, abandoned)
        return report, [(backup_id, self._why(report, backup_id)) for backup_id in report.to_delete]

    def _why(self, report: RetentionReport, backup_id: str) -> str:
        if backup_id in report.obsolete:
            return f"OBSOLETE under {report.policy}"
        if backup_id in report.abandoned:
            info = self.catalog.get(backup_id)
            verdict = self.catalog.owner(info)
            return f"abandoned: {verdict.reason if verdict else 'its owner is gone'}"
        info = self.catalog.get(backup_id)
        if info.deleting:
            return "an interrupted deletion, finished"
        return "older than the newest DONE backup"

    # ---- checks ---------------------------------------------------------------------------

    def _keep_chains(self, targets: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Retention never breaks a chain: a backup an incremental kept needs is kept too."""
        going = {backup_id for backup_id, _ in targets}
        needed = dependents(self.catalog, going)
        kept = []
        for backup_id, why in targets:
            staying = [d for d in needed.get(backup_id, []) if d not in going]
            if staying:
                self.reporter.log(
                    f"backup {backup_id} kept: incremental backup(s) {', '.join(staying)} need it",
                    logging.WARNING,
                )
                continue
            kept.append((backup_id, why))
        return kept

    def _children_first(self, targets: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Oldest first, but each backup after every incremental built on it that goes too:
        a run that stops half-way never leaves an incremental whose parent is gone."""
        going = dict(targets)
        needed = dependents(self.catalog, going)
        ordered: list[tuple[str, str]] = []
        placed: set[str] = set()

        def place(backup_id: str) -> None:
            placed.add(backup_id)
            for child in sorted(needed.get(backup_id, []), reverse=True):
                if child in going and child not in placed:
                    place(child)
            ordered.append((backup_id, going[backup_id]))

        for backup_id, _ in targets:
            if backup_id not in placed:
                place(backup_id)
        return ordered

    def _single(
        self,
        info: BackupInfo,
        backups: list[BackupInfo],
        keeps: dict[str, str],
        dead: set[str],
    ) -> list[tuple[str, str]]:
        """-b: the backup, and with --chain every backup built on it before it (newest
        first: a deletion that stops half-way never leaves an incremental whose parent is
        gone). Every one is checked before anything is deleted."""
        needed_by = dependents(self.catalog, [info.backup_id]).get(info.backup_id, [])
        if needed_by and not self.request.chain:
            raise OperationFailed(
                f"backup {info.backup_id} of server {self.request.server} is needed by "
                f"incremental backup(s) {', '.join(needed_by)}: delete those first "
                "(newest first), delete them all with --chain, or keep it"
            )
        by_id = {b.backup_id: b for b in backups}
        going = [by_id[d] for d in sorted(set(needed_by), reverse=True) if d in by_id]
        going.append(info)
        ids = {b.backup_id for b in going}
        after = [b for b in backups if b.backup_id not in ids]
        for backup in going:
            self._check_single(backup, after, keeps, dead)
        why = f"built on {info.backup_id}, requested with -b --chain"
        return [(b.backup_id, "requested with -b" if b is info else why) for b in going]

    def _check_single(
        self,
        info: BackupInfo,
        after: list[BackupInfo],
        keeps: dict[str, str],
        dead: set[str],
    ) -> None:
        """Why this backup must not go (OperationFailed); `after`: what the run leaves."""
        keep = self.catalog.keep_target(info.backup_id) or keeps.get(info.backup_id)
        if keep:
            raise OperationFailed(
                f"backup {info.backup_id} of server {self.request.server} has a keep:{keep} "
                "annotation; release it first (backup-keep --release) to delete it"
            )
        if info.status == DONE and self.request.minimum_redundancy > 0:
            done = sum(1 for b in after if b.status == DONE)
            if self.request.minimum_redundancy > done:
                raise OperationFailed(
                    f"not deleting backup {info.backup_id}: minimum redundancy is "
                    f"{self.request.minimum_redundancy} and {done} DONE backup(s) would remain"
                )
        if info.status == STARTED and info.backup_id not in dead:
            if not self.request.force:
                verdict = self.catalog.owner(info)
                where = f" ({verdict.reason})" if verdict else ""
                raise OperationFailed(
                    f"backup {info.backup_id} is STARTED and may still be running{where}; "
                    "cancel it, or if its process has ended, delete it with --force"
                )
            self.reporter.log(
                f"deleting STARTED backup {info.backup_id} (--force)", logging.WARNING
            )
        elif self.request.force:
            self.reporter.log(
                f"--force has no effect: backup {info.backup_id} is {info.status}",
                logging.WARNING,
            )

    def _refuse_locked(self, backup_ids: list[str]) -> None:
        """--check-object-lock: every object of every backup to go is checked first, so
        that a locked one stops the run before anything is deleted."""
        self.reporter.phase("checking S3 Object Lock")
        for backup_id in backup_ids:
            prefix = self.layout.backup_prefix(backup_id)
            locked = locked_objects(self.store, (o.key for o in self.store.list_objects(prefix)))
            if locked:
                more = f" (and {len(locked) - 1} more locked object(s))" if len(locked) > 1 else ""
                raise OperationFailed(
                    f"backup {backup_id} of server {self.request.server} is under S3 Object "
                    f"Lock: {locked[0].describe()}{more}; nothing was deleted"
                )

    def _without_locked_wal(self, cleanup: WalCleanup) -> WalCleanup:
        """The cleanup without the WAL still under S3 Object Lock (one HEAD per file): such
        a file stays, and a later deletion, whose cutoff is past it, removes it then."""
        self.reporter.phase("checking S3 Object Lock of the WAL to remove")
        locked = locked_objects(self.store, cleanup.keys)
        if not locked:
            return cleanup
        held = {lock.key for lock in locked}
        ends = [lock.until for lock in locked if lock.until is not None]
        until = f"until {max(ends).isoformat()}" if len(ends) == len(locked) else "(legal hold)"
        return replace(
            cleanup,
            remove=tuple(item for item in cleanup.remove if item[1] not in held),
            reason=f"{cleanup.reason}; {len(held)} kept under S3 Object Lock {until}",
        )

    def _changed(self, expected: BackupInfo) -> tuple[str, BackupInfo | None] | None:
        """Why a backup must not be deleted after all (re-read just before deleting it),
        with its backup.info as it is now."""
        try:
            current = self.catalog.get(expected.backup_id)
        except PgvaultError as exc:
            return f"its backup.info cannot be read now ({exc})", None
        if current.status != expected.status:
            return f"its status changed from {expected.status} to {current.status}", current
        keep = self.catalog.keep_target(expected.backup_id)
        if keep:
            return f"it has been kept (keep:{keep}) meanwhile", current
        return None

    # ---- deleting ---------------------------------------------------------------------------

    def archived(self) -> list[tuple[str, str]]:
        """(WAL name, key) of every WAL object (one listing per run, kept up to date)."""
        if self._archived is None:
            found = []
            for obj in self.store.list_objects(self.layout.wals_prefix):
                parsed = self.layout.parse_wal(obj.key)
                if parsed is not None:
                    found.append((parsed[0], obj.key))
            self._archived = found
        return self._archived

    def _delete(
        self,
        info: BackupInfo,
        why: str,
        remaining: list[BackupInfo],
        keeps: dict[str, str],
        dead: set[str],
        skip_if_standalone: bool,
    ) -> BackupDeletion:
        verb = "would delete" if self.request.dry_run else "deleting"
        self.reporter.phase(f"{verb} backup {info.backup_id}")
        prefix = self.layout.backup_prefix(info.backup_id)
        info_key = self.layout.backup_info(info.backup_id)
        objects = list(self.store.list_objects(prefix))
        data = sorted(o.key for o in objects if o.key != info_key)
        size = sum(o.size for o in objects)
        if not self.request.dry_run:
            check_deletable(info)
            # First FAILED "being deleted": no reader takes a half-deleted backup for DONE.
            marked = info.with_changes(status=FAILED, error=DELETING_ERROR)
            self.store.put_bytes(info_key, serialize(marked))
            for snapshot_id in delete_snapshots(info):  # as barman: its disk snapshots first
                self.reporter.log(f"deleted snapshot {snapshot_id} of backup {info.backup_id}")
            # A killed backup's part kept for a resume by chunk goes with it.
            self.store.abort_pending_uploads(prefix)
            self.store.delete_many(data)
            self.store.delete_many([info_key])  # last: a failed deletion can be run again
            forget_copies(self.store, self.request.server, [info.backup_id])
        self.catalog.forget(info.backup_id)
        self.reporter.log(
            f"{verb} backup {info.backup_id} ({info.status}, {why}): "
            f"{len(data) + 1} objects, {size} bytes"
        )
        cleanup = plan_wal_cleanup(
            info,
            remaining,
            keeps,
            self.archived(),
            skip_if_standalone=skip_if_standalone,
            dead=dead,
        )
        cleanup = self._remove_wal(info, cleanup)
        return BackupDeletion(
            backup_id=info.backup_id,
            status=info.status,
            why=why,
            objects=(*data, info_key),
            size=size,
            wal=cleanup,
            segment_size=info.xlog_segment_size or DEFAULT_SEGMENT_SIZE,
        )

    def _remove_wal(self, info: BackupInfo, cleanup: WalCleanup) -> WalCleanup:
        """Remove the WAL the deleted backup alone needed (locked WAL kept when asked)."""
        if cleanup.remove and self.request.check_object_lock:
            cleanup = self._without_locked_wal(cleanup)
        if cleanup.remove and not self.request.dry_run:
            self.reporter.phase(f"removing WAL after backup {info.backup_id}")
            try:
                self.store.delete_many(cleanup.keys)
            except PgvaultError as exc:
                raise OperationFailed(
                    f"backup {info.backup_id} was deleted, but removing the WAL it no longer "
                    f"needs failed: {exc}; run the deletion again to finish"
                ) from exc
        gone = set(cleanup.keys)
        self._archived = [item for item in self.archived() if item[1] not in gone]
        self.reporter.log(f"{len(cleanup.remove)} WAL file(s): {cleanup.reason}")
        return cleanup


# ---- reporting ----------------------------------------------------------------------------------


def wal_runs(
    names: list[str], segment_size: int = DEFAULT_SEGMENT_SIZE
) -> list[tuple[str, str, int]]:
    """Consecutive segments folded into (first, last, count); other files one by one after."""
    runs: list[tuple[str, str, int]] = []
    previous: Segment | None = None
    for name in sorted(n for n in names if is_segment(n)):
        current = Segment.parse(name, segment_size)
        if previous is not None and current == previous.next():
            first, _, count = runs[-1]
            runs[-1] = (first, name, count + 1)
        else:
            runs.append((name, name, 1))
        previous = current
    runs += [(name, name, 1) for name in sorted(n for n in names if not is_segment(n))]
    return runs


def public_request(request: DeleteRequest) -> DeleteRequest:
    """The request as a job records it: no credentials from the URL."""
    return replace(request, location=request.location.without_credentials())


def describe(request: DeleteRequest) -> str:
    what = f"backup {request.backup}" if request.backup else f"retention {request.policy}"
    if request.chain:
        what += " and the incrementals built on it"
    dry = " (dry run)" if request.dry_run else ""
    return f"delete {what} of {request.server} in {request.location.display()}{dry}"


__all__ = [
    "BackupDeletion",
    "DeleteRequest",
    "DeleteResult",
    "describe",
    "parse_now",
    "public_request",
    "run_delete",
    "validate_request",
    "wal_runs",
]
