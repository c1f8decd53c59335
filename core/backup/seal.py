"""The seal phase: backup_manifest, pgvault.json, then backup.info DONE last.

Until backup.info says DONE nothing of the backup is listed as restorable, so it is the
last object written.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, replace
from datetime import datetime

from core.archives import ArchiveSetWriter
from core.backup.increment_plan import Increment
from core.backup.result import BackupResult
from core.backup.resume import delete_checkpoints
from core.backup.state import BackupMode, BackupState, FilePlan
from core.catalog.backup_info import DONE, BackupInfo
from core.catalog.layout import PG_MANIFEST
from core.catalog.manifest import ArchiveRecord, FileRecord, WalRange, postgres_manifest
from core.encryption import seal as seal_bytes
from core.errors import OperationFailed, PgvaultError
from core.postgres.connection import BackupStop, ServerFacts
from core.postgres.walnames import format_lsn, parse_history, segment_of_lsn


@dataclass(frozen=True)
class _Contents:
    """What the backup holds, as the manifests and the result describe it."""

    files: dict[str, FileRecord]
    archives: tuple[ArchiveRecord, ...]
    excluded: dict[str, int]


def seal(
    state: BackupState,
    plan: FilePlan,
    mode: BackupMode,
    stop: BackupStop,
    copy_time: float,
    increment: Increment | None = None,
) -> BackupResult:
    """Write the manifests and backup.info DONE; the backup is restorable from here."""
    state.enter("writing manifests")
    contents = _contents(state.writers, plan)
    if increment is not None:  # the block maps, now that the stream filled them in
        state.manifest = replace(state.manifest, incremental=increment.record())
    _write_manifests(state, contents, mode, stop)
    elapsed = time.monotonic() - state.job.started_at
    state.info = _with_stop(state.info, stop, state.facts).with_changes(
        status=DONE,
        copy_stats={
            "total_time": round(elapsed, 6),
            "number_of_workers": state.job.request.store_config.jobs,
            "copy_time": round(copy_time, 6),
        },
    )
    state.put_info()
    with contextlib.suppress(PgvaultError):  # leftovers are harmless; DONE is what counts
        delete_checkpoints(state.stored)
    state.enter("done")
    info = state.info
    result = BackupResult(
        backup_id=state.backup_id,
        server=state.job.request.server,
        status=DONE,
        timeline=stop.timeline,
        begin_lsn=info.begin_xlog or "",
        end_lsn=info.end_xlog or "",
        begin_wal=info.begin_wal or "",
        end_wal=info.end_wal or "",
        files=len(contents.files),
        bytes_read=sum(r.size for r in contents.files.values()),
        bytes_stored=_stored_bytes(state, contents.archives),
        archives=contents.archives,
        elapsed=elapsed,
        compression=state.job.compression,
        excluded=contents.excluded,
    )
    return _with_kind(result, state, increment)


def _stored_bytes(state: BackupState, archives: tuple[ArchiveRecord, ...]) -> int:
    """What the backup occupies, as backup-list counts it: every object under its directory
    (archives, backup_manifest, pgvault.json, backup.info), not the archives alone."""
    prefix = state.job.layout.backup_prefix(state.backup_id)
    try:
        return sum(o.size for o in state.job.store.list_objects(prefix))
    except PgvaultError:  # the backup is DONE: a failed listing must not fail it
        return sum(a.size for a in archives)


def _with_kind(
    result: BackupResult, state: BackupState, increment: Increment | None
) -> BackupResult:
    if increment is not None:
        return replace(
            result,
            kind=increment.kind,
            parent=increment.parent.backup_id,
            method=increment.method,
        )
    record = state.manifest.incremental or {}
    fallback = record.get("fallback")
    return replace(result, fallback=str(fallback)) if fallback else result


def _contents(writers: list[ArchiveSetWriter], plan: FilePlan) -> _Contents:
    """This run's files and parts, after those a resumed run kept of the failed one."""
    files = file_records(writers)
    kept_archives: tuple[ArchiveRecord, ...] = ()
    if plan.kept is not None:
        kept_archives = tuple(plan.kept.archives)
        files = {**{f.path: f for f in plan.kept.files}, **files}
    archives = kept_archives + tuple(a for w in writers for a in w.archives)
    excluded: dict[str, int] = {}
    for tree in [*plan.tablespaces, plan.data]:
        for reason, count in tree.excluded.items():
            excluded[reason] = excluded.get(reason, 0) + count
    excluded.pop("pg_control", None)
    return _Contents(files, archives, excluded)


def file_records(writers: list[ArchiveSetWriter]) -> dict[str, FileRecord]:
    """Every file as restored; a later member with the same path wins, as in tar."""
    records: dict[str, FileRecord] = {}
    for writer in writers:
        for member in writer.members:
            records.pop(member.manifest_path, None)
            records[member.manifest_path] = member.record()
    return records


def _write_manifests(
    state: BackupState, contents: _Contents, mode: BackupMode, stop: BackupStop
) -> None:
    """backup_manifest (for pg_verifybackup), then pgvault.json marked done."""
    facts, start = state.facts, mode.start
    start_tli = _label_timeline(stop.labelfile, start.timeline)
    ranges = _wal_ranges(facts.data_directory, start_tli, start.lsn, stop.timeline, stop.lsn)
    manifest_bytes = postgres_manifest(
        contents.files.values(),
        ranges,
        state.job.algorithm,
        facts.version_num,
        facts.system_identifier,
    )
    state.job.store.put_bytes(
        state.job.layout.backup_file(state.backup_id, PG_MANIFEST),
        seal_bytes(manifest_bytes, state.job.recipient),
        state.job.options,
    )
    state.manifest = replace(
        state.manifest,
        state="done",
        finished=datetime.now().astimezone().isoformat(),
        lease=None,
        tablespace_map=stop.spcmapfile,
        archives=contents.archives,
        files=tuple(contents.files.values()),
        excluded=contents.excluded,
        postgres={
            **state.manifest.postgres,
            "timeline": stop.timeline,
            "start_lsn": format_lsn(start.lsn),
            "end_lsn": format_lsn(stop.lsn),
            "wal_ranges": [
                {
                    "timeline": r.timeline,
                    "start": format_lsn(r.start_lsn),
                    "end": format_lsn(r.end_lsn),
                }
                for r in ranges
            ],
        },
    )
    state.put_manifest()


def _label_timeline(label: str, default: int) -> int:
    for line in label.splitlines():
        if line.startswith("START TIMELINE:"):
            return int(line.split(":", 1)[1])
    return default


def _wal_ranges(
    pgdata: str, start_tli: int, start_lsn: int, end_tli: int, end_lsn: int
) -> list[WalRange]:
    """WAL-Ranges as PostgreSQL computes them: newest timeline first."""
    if start_tli == end_tli:
        return [WalRange(end_tli, start_lsn, end_lsn)]
    path = os.path.join(pgdata, "pg_wal", f"{end_tli:08X}.history")
    try:
        with open(path) as fh:
            history = parse_history(fh.read())
    except OSError as exc:
        raise OperationFailed(f"cannot read {path} to span timelines: {exc.strerror}") from None
    ranges = []
    upper = end_lsn
    tli = end_tli
    for entry in reversed(history):
        if entry.parent_timeline < start_tli:
            break
        ranges.append(WalRange(tli, entry.switch_lsn, upper))
        upper, tli = entry.switch_lsn, entry.parent_timeline
    ranges.append(WalRange(start_tli, start_lsn, upper))
    return ranges


def _with_stop(info: BackupInfo, stop: BackupStop, facts: ServerFacts) -> BackupInfo:
    size = facts.wal_segment_size
    return info.with_changes(
        backup_label=stop.labelfile,
        end_time=stop.time,
        end_xlog=format_lsn(stop.lsn),
        end_wal=segment_of_lsn(stop.timeline, stop.lsn, size),
        end_offset=stop.lsn % size,
    )
