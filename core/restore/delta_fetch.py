"""The fetch of a delta restore: only the parts, and in plain parts only the files, it needs.

A part none of whose files is needed (all kept in place) is not read at all. A part stored
as a plain tar (no compression, no encryption: barman-cloud's default) is read by ranges:
pgvault.json records where each file's bytes start in it, so each needed file is one
ranged read (its ustar header, then its bytes) through the ordinary extractor, which checks
its size and checksum. Any other part is streamed whole, the extractor skipping the files
kept (core.restore.extract).
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from functools import partial

from core.catalog.manifest import FileRecord
from core.catalog.reader import StoredArchive
from core.errors import IntegrityError
from core.restore.delta import wanted_files
from core.restore.extract import Destination, Extractor
from core.restore.state import RestoreRun
from core.restore.streams import Aborted
from core.restore.tarparse import BLOCK, FILE, TarMember

MiB = 1024 * 1024
READ_SIZE = 8 * MiB  # one ranged read of a file's bytes


def needed(run: RestoreRun) -> dict[str, list[FileRecord]]:
    """By part file name: the files a delta restore must still write."""
    kept = run.files.kept
    by_part: dict[str, list[FileRecord]] = {}
    for path, record in wanted_files(run).items():
        if path not in kept:
            by_part.setdefault(record.archive, []).append(record)
    return by_part


def plain(part: StoredArchive) -> bool:
    """A part whose stored bytes are its tar stream (offsets in pgvault.json apply)."""
    return part.ref.codec is None and not part.ref.encrypted


def range_tasks(
    run: RestoreRun, part: StoredArchive, dest: Destination, records: list[FileRecord]
) -> list[Callable[[], None]]:
    """One task per needed file of a plain part: its header and bytes read by range."""
    label = f"{run.store.describe().rstrip('/')}/{part.key}"
    return [partial(_fetch_file, run, part, dest, record, label) for record in records]


def _fetch_file(
    run: RestoreRun, part: StoredArchive, dest: Destination, record: FileRecord, label: str
) -> None:
    if run.abort.is_set():
        raise Aborted
    run.reporter.checkpoint()
    header = run.store.read_range(part.key, record.offset - BLOCK, BLOCK)
    member = _member(header, record, dest, label)
    extractor = Extractor(run.files, dest, part.filename, label)
    try:
        extractor.begin(member)
        done = 0
        while done < record.size:
            if run.abort.is_set():
                raise Aborted
            length = min(READ_SIZE, record.size - done)
            data = run.store.read_range(part.key, record.offset + done, length)
            if len(data) != length:
                raise IntegrityError(f"{label}: ends inside {record.path}")
            extractor.data(memoryview(data))
            run.reporter.advance(len(data))
            done += length
        extractor.end()
    finally:
        extractor.close()  # the file of a failed or cancelled read
    with run.files.lock:
        run.downloaded += record.size + BLOCK


def _member(header: bytes, record: FileRecord, dest: Destination, label: str) -> TarMember:
    """The ustar header just before the file's bytes, checked against pgvault.json."""
    try:
        info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
    except tarfile.TarError:
        info = None
    if info is None or not info.isreg() or info.size != record.size:
        raise IntegrityError(
            f"{label}: no header of {record.path} ({record.size} bytes) where pgvault.json "
            f"says its bytes start ({record.offset})"
        )
    return TarMember(
        name=record.path.removeprefix(dest.manifest_prefix),
        kind=FILE,
        type=info.type,
        size=record.size,
        mode=info.mode,
        uid=info.uid,
        gid=info.gid,
        uname=info.uname,
        gname=info.gname,
        mtime=record.mtime,
        linkname="",
    )


__all__ = ["needed", "plain", "range_tasks"]
