"""The fetch and extract phases: every archive part downloaded, decompressed and untarred.

Parts are read with ranged reads ahead of the reader (several parts at once, `-J` reads in
flight in all, core.restore.streams.Budget); each part's stored bytes are checksummed as
they arrive, turned into its tar stream (`tar_stream`: decrypted when it is an age file,
then decompressed) and untarred by core.restore.extract on a thread of its own.
Then every file pgvault.json records must have arrived.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial

from core.catalog.manifest import ArchiveRecord, new_checksum
from core.catalog.reader import ArchiveSet, StoredArchive
from core.codecs import Codec
from core.crypto import DecryptingReader
from core.encryption import unlocked_keys
from core.errors import Cancelled, IntegrityError
from core.restore.delta_fetch import needed, plain, range_tasks
from core.restore.extract import Destination, Extractor, apply_directory_metadata
from core.restore.plan import BackupPlan
from core.restore.state import RestoreRun
from core.restore.streams import Aborted, Budget, Pipe, StoredBytes
from core.restore.tarparse import TarError, TarHandler, TarStream

MiB = 1024 * 1024
RANGE_SIZE = 8 * MiB  # one ranged read of a stored archive
DECOMPRESSED_READ = 2 * MiB  # one read of decompressed tar bytes (QUEUE_DEPTH + 2 of them per part)
SHOWN = 5  # absent files named in the error


@dataclass
class _Unit:
    """Parts that must be restored in order (one archive set without pgvault.json)."""

    parts: list[tuple[ArchiveSet, StoredArchive, Destination]]

    @property
    def size(self) -> int:
        return sum(p.size for _, p, _ in self.parts)


def check_recorded_archives(run: RestoreRun) -> None:
    """The phase: the stored archive parts are exactly those pgvault.json records."""
    plan = run.plan
    info = plan.info
    if plan.manifest is None:
        run.not_verified.append(
            f"backup {info.backup_id} has no pgvault.json (barman-cloud wrote it): the "
            "stored archives and the restored files have no checksums to be checked "
            "against; every archive was read to its end-of-archive marker and "
            "decompressed without error"
        )
        return
    recorded = set(plan.archive_records)
    stored = {p.filename for s in plan.sets for p in s.parts}
    missing = sorted(recorded - stored)
    extra = sorted(stored - recorded)
    if missing or extra:
        raise IntegrityError(
            f"backup {info.backup_id}: "
            + "; ".join(
                ([f"{', '.join(missing)} recorded but not stored"] if missing else [])
                + ([f"{', '.join(extra)} stored but not recorded"] if extra else [])
            )
        )


def fetch_files(run: RestoreRun) -> None:
    """The phase: every part fetched and extracted, then the directories' attributes."""
    plan = run.plan
    records = run.files.records
    read_whole, by_range, range_bytes = _delta_split(run)
    total = sum(p.size for s in plan.sets for p in s.parts if p.filename in read_whole)
    files_total = len(records) - len(run.files.kept) if records else None
    run.reporter.set_totals(bytes_total=total + range_bytes, files_total=files_total)
    run.reporter.phase("restoring files")
    # With pgvault.json each file's record names the one part whose copy wins, so parts
    # are independent; without it, the parts of one set go in order (tar's rule).
    units = _units(plan, parallel_parts=records is not None, only=read_whole)
    jobs = max(1, run.request.store_config.jobs)
    tasks = len(units) + len(by_range)
    workers = max(1, min(tasks, jobs, max(2, os.cpu_count() or 1)))
    budget = Budget(jobs)
    archive_records = plan.archive_records
    run_all(
        run,
        [partial(_unit, run, unit, archive_records, budget) for unit in units] + by_range,
        workers,
        "pgvault-restore",
    )
    apply_directory_metadata(run.files)


def _delta_split(run: RestoreRun) -> tuple[set[str], list[Callable[[], None]], int]:
    """The parts read whole, the ranged reads of a delta restore's plain parts, their bytes."""
    parts = [(s, p) for s in run.plan.sets for p in s.parts]
    if not run.request.delta or run.files.records is None:
        return {p.filename for _, p in parts}, [], 0
    need = needed(run)
    whole: set[str] = set()
    tasks: list[Callable[[], None]] = []
    range_bytes = 0
    for archive_set, part in parts:
        files = need.get(part.filename, [])
        if not files:
            run.archives_skipped += 1
        elif plain(part):
            tasks += range_tasks(run, part, run.plan.destinations[archive_set.name], files)
            range_bytes += sum(f.size for f in files)
            run.archives_by_range += 1
        else:
            whole.add(part.filename)
    return whole, tasks, range_bytes


def run_all(run: RestoreRun, tasks: list[Callable[[], None]], workers: int, name: str) -> None:
    """Every task on a pool; the first failure aborts the others and is raised (a real
    error before the Aborted/Cancelled it caused in the others)."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    futures: list[Future[None]] = []
    try:
        futures = [pool.submit(task) for task in tasks]
        wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.done() and f.exception() is not None for f in futures):
            run.abort.set()
            wait(futures)
            errors = [e for f in futures if (e := f.exception()) is not None]
            real = [e for e in errors if not isinstance(e, Aborted | Cancelled)]
            raise (real or errors)[0]
    except BaseException:
        run.abort.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def check_restored(run: RestoreRun) -> None:
    """The phase: every file pgvault.json records was restored (or deliberately left out)."""
    run.reporter.phase("checking what was restored")
    state = run.files
    records = state.records
    if records is None:
        return
    absent = sorted(set(records) - state.written - set(state.left_out) - state.kept)
    if absent:
        shown = ", ".join(absent[:SHOWN]) + (" ..." if len(absent) > SHOWN else "")
        raise IntegrityError(
            f"{len(absent)} files recorded in pgvault.json were not in the archives: {shown}"
        )
    algorithm = state.algorithm
    read = len(run.plan.archive_records) - run.archives_skipped - run.archives_by_range
    stored = len(run.plan.archive_records)
    if read:
        noun = "stored archive" if stored == 1 else "stored archives"
        which = f"{read} of {stored} {noun}" if read < stored else f"{read} {noun}"
        agree = "matches its size" if read == 1 else "match their sizes"
        checksums = "checksum" if read == 1 else "checksums"
        run.verified.append(f"{which} {agree} and {algorithm} {checksums} in pgvault.json")
    if run.archives_skipped or run.archives_by_range:
        run.not_verified.append(
            f"delta: {run.archives_skipped} archives not read (every file of theirs kept) "
            f"and {run.archives_by_range} read only where the files to write are: their "
            "whole-archive checksums are not checked (each file written is)"
        )
    run.verified.append(f"{state.files} restored files match their sizes and {algorithm} checksums")
    if state.kept:
        run.verified.append(
            f"{len(state.kept)} files kept in place match their sizes and {algorithm} checksums"
        )


def _units(plan: BackupPlan, parallel_parts: bool, only: set[str]) -> list[_Unit]:
    units = []
    for archive_set in plan.sets:
        dest = plan.destinations[archive_set.name]
        parts = [(archive_set, part, dest) for part in archive_set.parts if part.filename in only]
        if parallel_parts:
            units += [_Unit([p]) for p in parts]
        else:
            units.append(_Unit(parts))
    return sorted(units, key=lambda u: u.size, reverse=True)


def _unit(
    run: RestoreRun, unit: _Unit, archive_records: dict[str, ArchiveRecord], budget: Budget
) -> None:
    for _set, part, dest in unit.parts:
        if run.abort.is_set():
            raise Aborted
        _part(run, part, dest, archive_records.get(part.filename), budget)


def _part(
    run: RestoreRun,
    part: StoredArchive,
    dest: Destination,
    record: ArchiveRecord | None,
    budget: Budget,
) -> None:
    label = f"{run.store.describe().rstrip('/')}/{part.key}"  # the object, named in full
    reader = run.store.open_prefetching_reader(
        part.key, size=part.size, part_size=RANGE_SIZE, jobs=budget.jobs, limit=budget.semaphore
    )
    budget.add(reader)
    algorithm = run.files.algorithm
    source = StoredBytes(
        reader,
        new_checksum(algorithm) if algorithm and record is not None else None,
        run.reporter,
        run.abort,
    )
    extractor = Extractor(run.files, dest, part.filename, label)
    try:
        untar_part(run, part, source, extractor, label)
    finally:
        extractor.close()  # the file a failed or cancelled part was writing
        budget.remove(reader)
        reader.close()
    count_part(run, part, source, record, label)


def untar_part(
    run: RestoreRun, part: StoredArchive, source: StoredBytes, handler: TarHandler, label: str
) -> None:
    """One stored part, decrypted and decompressed, into a tar handler."""
    stored = decrypted(run, part, source, label) if part.ref.encrypted else source
    untar(tar_stream(stored, part.ref.codec), handler, label)


def count_part(
    run: RestoreRun,
    part: StoredArchive,
    source: StoredBytes,
    record: ArchiveRecord | None,
    label: str,
) -> None:
    """A part fully read: its bytes counted, its stored size and checksum checked."""
    with run.files.lock:
        run.downloaded += source.size
    check_archive(label, part, source, record)


def decrypted(
    run: RestoreRun, part: StoredArchive, source: StoredBytes, label: str
) -> DecryptingReader:
    """The plaintext of an age-encrypted part, with the server's keys unlocked once."""
    identities = unlocked_keys(run.store, run.request.server).identities
    return DecryptingReader(source, identities, label)


def tar_stream(source: StoredBytes | DecryptingReader, codec: Codec | None) -> Iterator[bytes]:
    """An archive's tar bytes from its stored bytes (decrypted, then decompressed)."""
    if codec is None:
        while data := (source.chunk() if isinstance(source, StoredBytes) else source.read(MiB)):
            yield data
    else:
        stream = codec.stream_reader(source, read_size=MiB)
        while data := stream.read(DECOMPRESSED_READ):
            yield data


def untar(chunks: Iterator[bytes], extractor: TarHandler, label: str) -> None:
    """Feed the tar stream to the extractor; parsing and writing on a thread of their own."""
    pipe = Pipe()
    errors: list[BaseException] = []
    parser = TarStream(extractor)

    def write() -> None:
        try:
            while (item := pipe.get()) is not None:
                parser.feed(item)
            parser.finish()
        except BaseException as exc:
            errors.append(exc)
            pipe.fail()

    # Decompression here, tar parsing and writes on their own thread: the codecs and
    # os.write release the GIL, so the two overlap.
    writer = threading.Thread(target=write, name="pgvault-untar", daemon=True)
    writer.start()
    failure: BaseException | None = None
    try:
        for data in chunks:
            pipe.put(data)
        pipe.put(None)
    except BaseException as exc:
        failure = exc
        pipe.fail()
    finally:
        writer.join()
    if errors and not isinstance(errors[0], Aborted):
        raise _translate(errors[0], label)
    if failure is not None:
        if isinstance(failure, ValueError):  # a damaged compressed stream
            raise IntegrityError(f"{label}: {failure}")
        raise failure


def check_archive(
    label: str, part: StoredArchive, source: StoredBytes, record: ArchiveRecord | None
) -> None:
    if source.size != part.size:
        raise IntegrityError(f"{label}: {source.size} bytes read, {part.size} listed")
    if record is None:
        return
    if record.size != source.size:
        raise IntegrityError(
            f"{label}: {source.size} bytes stored, pgvault.json records {record.size}"
        )
    digest = source.hexdigest()
    if digest != record.checksum:
        raise IntegrityError(
            f"{label}: the stored bytes' checksum {digest} does not match the "
            f"{record.checksum} recorded in pgvault.json: the archive is damaged"
        )


def _translate(exc: BaseException, label: str) -> BaseException:
    if isinstance(exc, TarError):
        return IntegrityError(f"{label}: {exc}")
    return exc


__all__ = [
    "RANGE_SIZE",
    "check_archive",
    "check_recorded_archives",
    "check_restored",
    "fetch_files",
    "tar_stream",
    "untar",
]
