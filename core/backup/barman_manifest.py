"""The manifests of a Barman backup the hook uploaded: PostgreSQL's and pgvault.json.

pgvault.json records every file and archive part the upload wrote, with their checksums,
as pgvault's own backups do, so that `verify` can check the stored backup. PostgreSQL's
backup_manifest, which pg_basebackup left in Barman's copy of the data directory, is stored
as is beside it (where pgvault's backups keep theirs): verify compares the two and restore
puts it back for pg_verifybackup.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core import __version__
from core.archives import ArchiveSetWriter
from core.backup.seal import file_records
from core.catalog.backup_info import BackupInfo
from core.catalog.layout import PG_MANIFEST, PGVAULT_MANIFEST, ServerLayout
from core.catalog.manifest import PgvaultManifest, dump_pgvault
from core.encryption import seal, write_recipient
from core.errors import OperationFailed
from core.storage import ObjectStore, PutOptions


@dataclass(frozen=True)
class HookUpload:
    """What was uploaded, as the manifests describe it."""

    backup_dir: str
    info: BackupInfo
    server: str
    started: str
    compression: str | None
    algorithm: str  # the manifest's spelling: CRC32C or SHA256


def write_manifests(
    upload: HookUpload,
    writers: list[ArchiveSetWriter],
    store: ObjectStore,
    layout: ServerLayout,
    options: PutOptions,
    warn: Callable[[str], None],
) -> None:
    """backup_manifest (when Barman's copy has one), then pgvault.json; backup.info follows."""
    recipient = write_recipient(store, upload.server)
    backup_id = upload.info.backup_id
    pg_manifest = _read_pg_manifest(upload.backup_dir)
    other = _other_algorithm(pg_manifest, upload.algorithm)
    if other is not None:
        # verify would find every file's checksum different from pgvault.json's
        warn(
            f"Barman's backup_manifest has {other} checksums, not {upload.algorithm}: "
            "not stored (pg_verifybackup cannot check a restore of this backup)"
        )
        pg_manifest = None
    if pg_manifest is not None:
        store.put_bytes(
            layout.backup_file(backup_id, PG_MANIFEST), seal(pg_manifest, recipient), options
        )
    encryption = f"age {recipient}" if recipient is not None else None
    manifest = pgvault_manifest(upload, writers, pg_manifest, encryption)
    store.put_bytes(
        layout.backup_file(backup_id, PGVAULT_MANIFEST),
        seal(dump_pgvault(manifest), recipient),
        options,
    )


def _read_pg_manifest(backup_dir: str) -> bytes | None:
    path = os.path.join(backup_dir, "data", PG_MANIFEST)
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None  # backup_method = rsync, or pg_basebackup --no-manifest
    except OSError as exc:
        raise OperationFailed(f"cannot read {path}: {exc.strerror}") from None


def _other_algorithm(pg_manifest: bytes | None, algorithm: str) -> str | None:
    """The manifest's checksum algorithm when it is not pgvault.json's; None when they agree."""
    if pg_manifest is None:
        return None
    try:
        files = json.loads(pg_manifest)["Files"]
        found = {str(f.get("Checksum-Algorithm", "NONE")) for f in files} or {algorithm}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # stored as it is: verify names a damaged manifest
    return None if found == {algorithm} else ", ".join(sorted(found))


def _wal_ranges(pg_manifest: bytes | None, info: BackupInfo) -> list[dict[str, Any]]:
    """PostgreSQL's WAL-Ranges when its manifest is there, else the one range backup.info
    gives (Barman records no timeline switch inside a backup)."""
    if pg_manifest is not None:
        try:
            document = json.loads(pg_manifest)
            return [
                {"timeline": int(r["Timeline"]), "start": r["Start-LSN"], "end": r["End-LSN"]}
                for r in document["WAL-Ranges"]
            ]
        except (ValueError, KeyError, TypeError):
            pass  # verify names a damaged manifest; the range below is still right
    if info.timeline and info.begin_xlog and info.end_xlog:
        return [{"timeline": info.timeline, "start": info.begin_xlog, "end": info.end_xlog}]
    return []


def pgvault_manifest(
    upload: HookUpload,
    writers: list[ArchiveSetWriter],
    pg_manifest: bytes | None,
    encryption: str | None,
) -> PgvaultManifest:
    """pgvault.json of the uploaded backup, state done."""
    info = upload.info
    return PgvaultManifest(
        backup_id=info.backup_id,
        server=upload.server,
        state="done",
        pgvault_version=__version__,
        started=upload.started,
        finished=datetime.now().astimezone().isoformat(),
        compression=upload.compression,
        checksum_algorithm=upload.algorithm,
        encryption=encryption,
        tablespaces=[
            {"name": t.name, "oid": t.oid, "location": t.location} for t in (info.tablespaces or ())
        ],
        archives=tuple(a for w in writers for a in w.archives),
        files=tuple(file_records(writers).values()),
        postgres={
            "version": info.version,
            "system_identifier": str(info.systemid),
            "segment_size": info.xlog_segment_size,
            "data_checksums": info.data_checksums,
            "timeline": info.timeline,
            "start_lsn": info.begin_xlog,
            "end_lsn": info.end_xlog,
            "wal_ranges": _wal_ranges(pg_manifest, info),
            "barman_backup_dir": upload.backup_dir,
        },
    )
