"""The stream phase: walk -> tar -> compress -> parts, uploaded `-J` at a time.

`open_archive_set` is the one place an archive set's transform is chosen (the codec, then
age encryption to the server's key file recipient), and every stored part is checkpointed so that a
failed backup can be resumed.
"""

from __future__ import annotations

import os
import time

from core.archives import ArchiveSettings, ArchiveSetWriter, ArchiveTarget, Member
from core.backup.control import add_pg_control
from core.backup.increment_plan import IncrementChooser
from core.backup.part_uploads import ChunkRecorder, upload_key
from core.backup.resume import PartCheckpoint, write_checkpoint
from core.backup.state import BackupMode, BackupState, Copy, ExternalFile, FilePlan
from core.catalog.chains import INCREMENT_PREFIX
from core.catalog.manifest import ArchiveRecord
from core.errors import OperationFailed
from core.postgres.connection import BackupStop
from core.storage import ObjectStore
from core.tarstream import FileAttributes

GiB = 1024**3
MiB = 1024**2


def stream_files(
    state: BackupState, plan: FilePlan, chooser: IncrementChooser | None = None
) -> Copy:
    """Every tablespace, then PGDATA, pg_control and outside config; data stays open.

    An incremental (`chooser`) stores its sets as incremental_data..., which barman-cloud
    never takes for a backup's archives."""
    state.enter("copying files")
    started = time.monotonic()
    chunk = chunk_size(state.job.store, state.job.request.max_archive_size)
    prefix = INCREMENT_PREFIX if chooser else ""
    # An encrypted part is never continued by chunk (age draws a new file key per stream):
    # its chunks are not recorded.
    recorder = _recorder(state, plan) if state.job.recipient is None else None
    for tablespace, tree in zip(state.facts.tablespaces, plan.tablespaces, strict=True):
        name = prefix + str(tablespace.oid)
        writer = open_archive_set(state, name, chunk, plan.first_part(name), chooser, recorder)
        writer.add_tree(tree, chooser)
        writer.close()
        tree.entries = []  # streamed: only the members' records are kept from here
    data = open_archive_set(
        state, prefix + "data", chunk, plan.first_part(prefix + "data"), chooser, recorder
    )
    data.add_tree(plan.data, chooser)
    plan.data.entries = []
    add_pg_control(data, state.facts.data_directory)
    for file in plan.external:
        _add_external(data, file)
    return Copy(data, started, plan.bytes_total)


def finish_upload(state: BackupState, copy: Copy, mode: BackupMode, stop: BackupStop) -> float:
    """backup_label into the data archive's last part; returns the seconds spent copying."""
    state.enter("finishing the upload")
    root = os.stat(state.facts.data_directory)
    label_bytes = stop.labelfile.encode("utf-8")
    state.job.reporter.set_totals(bytes_total=copy.bytes_total + len(label_bytes))
    copy.data.add_bytes(
        "backup_label",
        label_bytes,
        FileAttributes(0o600, root.st_uid, root.st_gid, stop.time.timestamp()),
        rollover=False,  # with pg_control, in the last part, as barman-cloud has it
    )
    copy.data.close()
    copy_time = time.monotonic() - copy.started
    mode.session.close()
    return copy_time


def chunk_size(store: ObjectStore, max_archive_size: int) -> int:
    """Parts large enough for an archive of -S plus one 1 GiB file within the part limit."""
    needed = -(-(max_archive_size + GiB) // (store.max_parts - 1))
    needed = -(-needed // MiB) * MiB
    return max(store.chunk_size, needed)


def _recorder(state: BackupState, plan: FilePlan) -> ChunkRecorder:
    """Chunks recorded as stored; a resumed run's parts continue the uploads it may reuse."""
    kept = plan.kept
    continued = {r.filename: upload for r, upload in kept.uploads.values()} if kept else {}
    reused_before = kept.reused_stored if kept else 0
    extra: list[int] = []

    def on_reused(filename: str, stored_bytes: int) -> None:
        extra.append(stored_bytes)
        state.log(f"{filename}: {stored_bytes} bytes its killed upload stored kept, not sent again")
        state.job.reporter.detail("reused_stored_bytes", reused_before + sum(extra))

    return ChunkRecorder(state.stored, state.job.options, continued, on_reused)


def open_archive_set(
    state: BackupState,
    name: str,
    chunk: int,
    first_part: int,
    chooser: IncrementChooser | None = None,
    recorder: ChunkRecorder | None = None,
) -> ArchiveSetWriter:
    """An archive set writer with the backup's compression; the failure path aborts it."""
    job = state.job

    def checkpoint_part(record: ArchiveRecord, members: list[Member]) -> None:
        """A stored part, recorded so that a resumed run can keep it (with block maps)."""
        maps = chooser.files if chooser else {}
        blocks = {
            m.manifest_path: maps[m.manifest_path]
            for m in members
            if m.manifest_path in maps and maps[m.manifest_path][3]
        }
        part = PartCheckpoint(record, tuple(m.record() for m in members), blocks)
        write_checkpoint(state.stored, part, job.options)
        # Its chunks' record is no longer what a resume reads: the part is whole.
        job.store.delete_many([upload_key(state.stored, record.filename)])

    target = ArchiveTarget(job.store, job.layout, state.backup_id, job.reporter, state.checkpoint)
    settings = ArchiveSettings(
        codec=job.codec,
        level=job.request.compression_level,
        threads=job.threads,
        max_size=job.request.max_archive_size,
        chunk_size=chunk,
        options=job.options,
        algorithm=job.algorithm,
        recipient=job.recipient,
    )
    writer = ArchiveSetWriter(
        target, name, settings, first_part=first_part, on_part=checkpoint_part, uploads=recorder
    )
    state.writers.append(writer)
    return writer


def _add_external(data: ArchiveSetWriter, file: ExternalFile) -> None:
    try:
        with open(file.path, "rb") as fh:
            st = os.fstat(fh.fileno())
            content = fh.read()
    except FileNotFoundError:
        if file.optional:
            return
        raise OperationFailed(f"{file.kind} {file.path} does not exist") from None
    except OSError as exc:
        raise OperationFailed(f"cannot read {file.kind} {file.path}: {exc.strerror}") from None
    name = os.path.basename(file.path)
    data.add_bytes(name, content, FileAttributes.of(st))
