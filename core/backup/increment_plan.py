"""The incremental plan step: against the parent, which files to store whole, which blocks
of which relation files, and which files are unchanged (not read at all when PostgreSQL can
say so).

- Files new since the parent, non-relation files whose size or mtime changed, FSM forks
  (never summarized) and files not made of whole blocks: stored whole.
- Non-relation files of the same size and mtime: recorded, not stored.
- Relation files, page-LSN method (13-16, or 17+ without usable summaries): read, and only
  pages whose pd_lsn >= the parent's start LSN (or is 0) stored; VM forks whole, since
  VACUUM may set all-visible bits without moving a page's LSN.
- Relation files, WAL-summary method (17+): only the blocks the summaries name are read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from core.backup.blocks import RelationFile, changed_pages, relation_file, to_runs
from core.backup.increment import (
    FileState,
    Parent,
    ParentChoice,
    fallback_record,
    increment_record,
    mismatch,
    restored_files,
)
from core.backup.state import BackupMode, BackupState, FilePlan
from core.backup.summaries import SUMMARIES_FROM, SummaryMap, read_summaries
from core.catalog.chains import PAGE_LSN, WAL_SUMMARY, write_kind
from core.postgres.pgdata import Entry, Tree
from core.postgres.walnames import parse_lsn

FSM, VM = 1, 2
SCAN_SIZE = 1024 * 1024
WHOLE = "whole"
SAME = "same"
SCAN = "scan"
Decision = str | list[int]


@dataclass
class IncrementChooser:
    """The archives' BlockChooser: stores what was decided, and records each file's map."""

    block_size: int
    since: int
    decisions: dict[str, Decision] = field(default_factory=dict)
    mtimes: dict[str, float] = field(default_factory=dict)
    files: dict[str, list[Any]] = field(default_factory=dict)  # path -> [path, size, mtime, runs]

    def choose(self, manifest_path: str, fd: int, size: int) -> Sequence[int] | None:
        blocks = self.planned(manifest_path, fd, size)
        if blocks is None:
            return None
        mtime = self.mtimes[manifest_path]
        self.files[manifest_path] = [manifest_path, size, mtime, to_runs(blocks)]
        return blocks

    def planned(self, manifest_path: str, fd: int, size: int) -> list[int] | None:
        """The blocks this run stores of the file (read now); None: it is stored whole."""
        decision = self.decisions.get(manifest_path)
        if isinstance(decision, list):
            return decision
        if decision == SCAN:
            return self._scan(fd, size)
        return None

    def same(self, path: str, entry: Entry) -> None:
        self.files[path] = [path, entry.size, entry.mtime, []]

    def _scan(self, fd: int, size: int) -> list[int]:
        chosen: list[int] = []
        offset = 0
        while offset < size:
            data = os.pread(fd, min(SCAN_SIZE, size - offset), offset)
            if not data:
                break
            whole = len(data) - len(data) % self.block_size
            chosen += changed_pages(
                data[:whole], offset // self.block_size, self.since, self.block_size
            )
            offset += len(data)
        return chosen


@dataclass(frozen=True)
class Increment:
    """An incremental backup as planned: its parent, method, and the chooser the stream uses."""

    kind: str
    parent: Parent
    method: str
    method_note: str | None
    chooser: IncrementChooser

    def record(self) -> dict[str, Any]:
        files = sorted(self.chooser.files.values(), key=lambda f: str(f[0]))
        return increment_record(
            self.kind, self.parent, self.method, self.method_note, files, self.chooser.block_size
        )


def plan_increment(
    state: BackupState, mode: BackupMode, plan: FilePlan, choice: ParentChoice
) -> tuple[FilePlan, Increment | None]:
    """Narrow the plan to what changed since the parent; None: a full backup after all."""
    parent = choice.parent
    reason = choice.fallback
    if parent is not None and reason is None:
        reason = mismatch(parent, state.facts, mode.start.timeline)
    if parent is None or reason is not None:
        _fall_back(state, choice.requested, reason or "no parent")
        return plan, None
    state.enter("choosing changed blocks")
    since = parse_lsn(parent.start_lsn)
    method, note, summary = _method(state, mode, since)
    chooser = IncrementChooser(state.facts.block_size, since)
    parent_files = restored_files(parent.manifest)
    trees = [*plan.tablespaces, plan.data]
    before = (sum(t.size for t in trees), sum(t.files for t in trees))
    for tree in trees:
        _narrow(tree, parent_files, summary, chooser)
    increment = Increment(choice.requested, parent, method, note, chooser)
    state.manifest = replace(state.manifest, incremental=increment.record())
    state.put_manifest()  # a killed run names its parent: `jobs resume` builds on the same
    # in clear, before backup.info names the parent: listed without the key, it is the kind
    write_kind(state.job.store, state.job.layout, state.backup_id, choice.requested)
    state.info = state.info.with_changes(parent_backup_id=parent.backup_id)
    state.put_info()  # and deleting the parent is refused while this one depends on it
    chain = " > ".join([*parent.chain, parent.backup_id])
    state.log(
        f"{choice.requested} backup on top of {chain}, changed blocks found by {method}"
        + (f" ({note})" if note else "")
    )
    return _totals(state, plan, before), increment


def _fall_back(state: BackupState, requested: str, reason: str) -> None:
    state.log(f"taking a full backup instead of an {requested} one: {reason}", logging.WARNING)
    state.manifest = replace(state.manifest, incremental=fallback_record(requested, reason))
    state.put_manifest()  # a killed run says it was a full backup: resumed as one


def _method(
    state: BackupState, mode: BackupMode, since: int
) -> tuple[str, str | None, SummaryMap | None]:
    facts = state.facts
    if facts.major < SUMMARIES_FROM:
        return PAGE_LSN, None, None
    if facts.summarize_wal != "on":
        return PAGE_LSN, "summarize_wal is off", None
    found = read_summaries(
        state.session, mode.start.timeline, since, mode.start.lsn, state.checkpoint
    )
    if isinstance(found, str):
        state.log(f"WAL summaries not usable, reading every page instead: {found}", logging.WARNING)
        return PAGE_LSN, found, None
    return WAL_SUMMARY, None, found


def _narrow(
    tree: Tree,
    parent_files: dict[str, FileState],
    summary: SummaryMap | None,
    chooser: IncrementChooser,
) -> None:
    """Drop unchanged files from the tree; record how each kept file is stored."""
    kept = []
    for entry in tree.entries:
        if entry.is_dir:
            kept.append(entry)
            continue
        path = tree.manifest_prefix + entry.path
        decision = _decide(path, entry, parent_files.get(path), summary, chooser.block_size)
        if decision == SAME:
            chooser.same(path, entry)
            continue
        chooser.decisions[path] = decision
        chooser.mtimes[path] = entry.mtime
        kept.append(entry)
    tree.entries = kept


def _decide(
    path: str,
    entry: Entry,
    old: FileState | None,
    summary: SummaryMap | None,
    block_size: int,
) -> Decision:
    if old is None:
        return WHOLE
    rel = relation_file(path)
    if rel is None:
        return SAME if (old.size, old.mtime) == (entry.size, entry.mtime) else WHOLE
    if rel.fork == FSM or entry.size % block_size:
        return WHOLE
    if summary is None:
        return WHOLE if rel.fork == VM else SCAN
    return _summarized(rel, entry.size, old, summary, block_size)


def _summarized(
    rel: RelationFile, size: int, old: FileState, summary: SummaryMap, block_size: int
) -> Decision:
    if (rel.tablespace, rel.database) in summary.new_databases:
        return WHOLE
    changes = summary.forks.get((rel.tablespace, rel.database, rel.relfilenode, rel.fork))
    if changes is None:
        return SAME if size == old.size else SCAN
    first = rel.first_block
    if changes.limit is not None and changes.limit <= first:
        return WHOLE
    count = size // block_size
    chosen = {b - first for b in changes.blocks if first <= b < first + count}
    if changes.limit is not None:
        # Past a truncation only what is there now counts: never an older backup's blocks.
        chosen.update(range(max(changes.limit - first, 0), count))
    return sorted(chosen)


def _totals(state: BackupState, plan: FilePlan, before: tuple[int, int]) -> FilePlan:
    """Progress totals less what the narrowing dropped (pg_control and the rest stay)."""
    trees = [*plan.tablespaces, plan.data]
    total = plan.bytes_total - before[0] + sum(t.size for t in trees)
    files = plan.files_total - before[1] + sum(t.files for t in trees)
    state.job.reporter.set_totals(bytes_total=total, files_total=files)
    return replace(plan, bytes_total=total, files_total=files)
