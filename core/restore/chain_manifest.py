"""PostgreSQL's backup_manifest for a restored chain: the directory as it was reconstructed.

An incremental's stored backup_manifest lists what it stores (changed blocks), not the
directory a chain restore writes; pg_combinebackup writes a new manifest for its output, and
so does this. Files restored whole keep the newest link's recorded checksum (each was checked
against it as it was written); a file no link changed since the one that holds it whole
keeps that link's checksum (it is written from that copy alone); files assembled from blocks
of several links take the CRC32C the restore joined from the runs it wrote
(core.restore.crc_join), and are read back and checksummed only without it (a SHA-256
backup, or a run not the length its blocks have in the file).
WAL-Ranges, version and system identifier are the newest backup's, since recovery starts
from its backup_label.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.catalog.manifest import FileRecord, PgvaultManifest, WalRange, new_checksum
from core.errors import IntegrityError, OperationFailed
from core.postgres.walnames import parse_lsn
from core.restore.chain import ChainLink, disk_path
from core.restore.extract import NOT_RESTORED, Destination

READ_BLOCK = 4 * 1024 * 1024


@dataclass(frozen=True)
class ChainManifest:
    """The restored directory's files and WAL ranges, ready for postgres_manifest()."""

    files: tuple[FileRecord, ...]
    wal_ranges: tuple[WalRange, ...]
    algorithm: str
    version: int
    system_identifier: str
    read_back: int  # files checksummed from disk (assembled from blocks)
    joined: int = 0  # files assembled from blocks, checksummed from the runs written


def assembled(newest: ChainLink) -> dict[str, tuple[int, float]]:
    """Files the newest link does not hold whole (changed blocks or unchanged): size, mtime."""
    record = newest.manifest.incremental or {}
    return {
        str(path): (int(size), float(mtime))
        for path, size, mtime, _runs in record.get("files", ())
        if "/" in str(path) or str(path) not in NOT_RESTORED
    }


def chain_manifest(
    chain: tuple[ChainLink, ...],
    where: dict[str, Destination],
    left_out: set[str],
    checkpoint: Callable[[int], None],
    written: dict[str, str] | None = None,
) -> ChainManifest:
    """What the reconstructed directory holds (`chain` newest first); `written`: the
    assembled files' checksums as written; `checkpoint(n)` after every block read back."""
    newest = chain[0]
    manifest = newest.manifest
    algorithm = manifest.checksum_algorithm
    built = assembled(newest)
    files = [
        record
        for record in manifest.files
        if record.path not in built and record.path not in left_out and _restored(record.path)
    ]
    links = [
        LinkFiles(link.records, set(link.block_maps), link.manifest.checksum_algorithm)
        for link in chain
    ]
    read_back = joined = 0
    for path, (size, mtime) in sorted(built.items()):
        digest = unchanged_checksum(links, path, size, algorithm)
        if digest is None and written and path in written:
            digest = written[path]
            joined += 1
        if digest is None:
            digest = _read_back(disk_path(path, where), size, algorithm, checkpoint)
            read_back += 1
        files.append(FileRecord(path, size, mtime, digest, "", 0))
    postgres = manifest.postgres
    return ChainManifest(
        files=tuple(files),
        wal_ranges=wal_ranges(manifest),
        algorithm=algorithm,
        version=int(postgres["version"]),
        system_identifier=str(postgres["system_identifier"]),
        read_back=read_back,
        joined=joined,
    )


@dataclass(frozen=True)
class LinkFiles:
    """What one link holds: files whole (with their checksums) and files as blocks."""

    whole: dict[str, FileRecord]
    blocks: set[str]
    algorithm: str


def unchanged_checksum(links: list[LinkFiles], path: str, size: int, algorithm: str) -> str | None:
    """The checksum recorded by the link holding the file whole, when no newer link stores a
    block of it and the size is the same; None when the file must be read back."""
    for link in links:  # newest first
        record = link.whole.get(path)
        if record is not None:  # held whole here: the restore wrote this copy
            same = record.size == size and link.algorithm == algorithm
            return record.checksum if same and record.checksum else None
        if path in link.blocks:  # this link stores blocks of it
            return None
    return None


def _restored(path: str) -> bool:
    return "/" in path or path not in NOT_RESTORED


def wal_ranges(manifest: PgvaultManifest) -> tuple[WalRange, ...]:
    """The newest backup's WAL-Ranges as its seal recorded them (newest timeline first)."""
    postgres = manifest.postgres
    recorded = postgres.get("wal_ranges") or []
    if recorded:
        return tuple(
            WalRange(int(r["timeline"]), parse_lsn(str(r["start"])), parse_lsn(str(r["end"])))
            for r in recorded
        )
    try:
        start, end = str(postgres["start_lsn"]), str(postgres["end_lsn"])
        return (WalRange(int(postgres["timeline"]), parse_lsn(start), parse_lsn(end)),)
    except (KeyError, TypeError, ValueError):
        raise IntegrityError(
            f"backup {manifest.backup_id}'s pgvault.json records no WAL range"
        ) from None


def _read_back(path: str, size: int, algorithm: str, checkpoint: Callable[[int], None]) -> str:
    checksum = new_checksum(algorithm)
    read = 0
    try:
        with open(path, "rb") as fh:
            while block := fh.read(READ_BLOCK):
                checksum.update(block)
                read += len(block)
                checkpoint(len(block))
    except OSError as exc:
        raise OperationFailed(f"cannot read back {path}: {exc.strerror}") from None
    if read != size:
        raise IntegrityError(f"{path} is {read} bytes after the chain restore, not {size}")
    return checksum.hexdigest()


__all__ = [
    "ChainManifest",
    "LinkFiles",
    "assembled",
    "chain_manifest",
    "unchanged_checksum",
    "wal_ranges",
]
