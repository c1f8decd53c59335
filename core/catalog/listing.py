"""What backup-list and backup-show tell, as frozen data for the command line and the console.

    list_backups(store, server) -> BackupListing
    show_backup(store, server, "latest") -> BackupDetails

Everything comes from the catalog alone, without downloading data: backup.info, one
recursive listing of base/ (stored sizes, keep annotations), and for backup-show the
backup's pgvault.json (files, archives, databases and tables with their sizes at backup
time). Catalogs barman-cloud wrote work the same way; what only pgvault.json knows is None.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any

from core.catalog.backup_info import BackupInfo, Tablespace
from core.catalog.chains import ancestors, link_sets, parent_links, recorded_kind
from core.catalog.layout import BACKUP_INFO, PG_MANIFEST, PGVAULT_MANIFEST, parse_archive_name
from core.catalog.manifest import DatabaseRecord, PgvaultManifest, TableRecord
from core.catalog.reader import Catalog
from core.catalog.tier import ARCHIVE, STANDARD
from core.errors import DecryptionFailed, PgvaultError
from core.postgres.walnames import (
    DEFAULT_SEGMENT_SIZE,
    Segment,
    is_segment,
    parse_lsn,
    segment_name,
)
from core.storage import ObjectInfo, ObjectStore

FULL = "full"
INCREMENTAL = "incremental"  # a backup.info naming a parent (room for incremental backups)
SNAPSHOT = "snapshot"  # its data is in cloud disk snapshots (core.snapshots)


def _kind(info: BackupInfo) -> str:
    if info.snapshots_info:
        return SNAPSHOT
    return INCREMENTAL if info.parent_backup_id else FULL


PGVAULT = "pgvault"
BARMAN = "barman-cloud"
ABANDONED = "ABANDONED"
DELETING = "DELETING"
BROKEN = "BROKEN"


@dataclass(frozen=True)
class BackupSummary:
    """One line of backup-list."""

    server: str
    backup_id: str
    name: str | None
    status: str
    kind: str
    begin_time: datetime | None
    end_time: datetime | None
    begin_wal: str | None
    end_wal: str | None
    begin_lsn: str | None
    end_lsn: str | None
    timeline: int | None
    #: bytes of every object stored under the backup's directory
    stored_size: int
    #: what PostgreSQL reported for the cluster at backup start (sum of pg_tablespace_size)
    data_size: int | None
    compression: str | None
    keep: str | None  # 'full', 'standalone' or None
    written_by: str  # 'pgvault' (it has a pgvault.json) or 'barman-cloud'
    error: str | None
    system_identifier: str | None
    postgres_version: int | None
    parent_backup_id: str | None = None
    #: an incremental's ancestors, full first; how its changed blocks were found
    chain: tuple[str, ...] = ()
    method: str | None = None
    #: a full backup taken when an incremental was asked for: why
    fallback: str | None = None
    #: a STARTED backup whose owner is provably gone: why (core.catalog.owner)
    abandoned: str | None = None
    #: its deletion has begun (backup.info FAILED with DELETING_ERROR)
    deleting: bool = False
    #: `standard`, or `archive` when its archives are in the archive tier (core.catalog.tier)
    tier: str = STANDARD
    #: where it has second copies (`pgvault copy`): URLs without credentials
    copies: tuple[str, ...] = ()
    #: its archives are age files: restoring it needs the server's key (core.encryption)
    encrypted: bool = False

    @property
    def shown_status(self) -> str:
        """The status both faces show: backup.info's, or ABANDONED / DELETING."""
        if self.abandoned:
            return ABANDONED
        return DELETING if self.deleting else self.status


@dataclass(frozen=True)
class BackupListing:
    server: str
    backups: tuple[BackupSummary, ...]  # oldest first
    #: backups whose backup.info could not be read (warned about, skipped)
    unreadable: tuple[str, ...] = ()
    #: (backup ID, why) of each of those: listed as BROKEN
    broken: tuple[tuple[str, str], ...] = ()
    #: the backup.info of each listed backup, for barman-compatible JSON
    infos: tuple[BackupInfo, ...] = ()


@dataclass(frozen=True)
class ArchivePart:
    """One stored archive object; checksum and contents only when pgvault.json has them."""

    filename: str
    key: str
    stored_size: int
    checksum: str | None = None
    tar_size: int | None = None
    files: int | None = None


@dataclass(frozen=True)
class ArchiveSetSummary:
    name: str  # 'data' or a tablespace OID
    tablespace: Tablespace | None
    parts: tuple[ArchivePart, ...]


@dataclass(frozen=True)
class WalNeeded:
    """The WAL a backup needs to reach consistency (each range on its own timeline)."""

    timeline: int | None
    begin_wal: str | None
    end_wal: str | None
    begin_lsn: str | None
    end_lsn: str | None
    #: (timeline, start LSN, end LSN), newest timeline first, from pgvault.json when known
    ranges: tuple[tuple[int, str, str], ...]
    segments: tuple[str, ...]


@dataclass(frozen=True)
class ManifestSummary:
    """pgvault.json's record of the backup (None for a backup barman-cloud wrote)."""

    pgvault_version: str
    state: str
    started: str
    finished: str | None
    checksum_algorithm: str
    compression: str | None
    compression_level: int | None
    files: int
    data_bytes: int  # sum of the files' sizes
    postgres_version_text: str | None
    data_checksums: str | None
    block_size: int | None
    segment_size: int | None
    excluded: tuple[tuple[str, int], ...]
    has_backup_manifest: bool


@dataclass(frozen=True)
class BackupDetails:
    """Everything backup-show prints."""

    summary: BackupSummary
    info: BackupInfo
    archives: tuple[ArchiveSetSummary, ...]
    #: the other objects of the backup's directory (backup.info, manifests, annotations...)
    other_objects: tuple[ObjectInfo, ...]
    manifest: ManifestSummary | None
    tablespaces: tuple[Tablespace, ...]
    wal: WalNeeded
    databases: tuple[DatabaseRecord, ...]
    tables: tuple[TableRecord, ...]
    #: what could not be read (a damaged pgvault.json, archives out of order), not fatal
    warnings: tuple[str, ...] = ()


# ---- list ---------------------------------------------------------------------------------------


def _compression(info: BackupInfo, objects: tuple[ObjectInfo, ...]) -> str | None:
    """barman-cloud leaves compression=None in backup.info: read it off the data archive."""
    if info.compression:
        return info.compression
    for obj in objects:
        ref = parse_archive_name(obj.key.rsplit("/", 1)[-1])
        if ref is not None and ref.is_data:
            return ref.codec.name if ref.codec else None
    return None


def summarise(catalog: Catalog, info: BackupInfo) -> BackupSummary:
    """One backup's line, from its backup.info and the catalog's cached listing."""
    objects = catalog.objects().get(info.backup_id, ())
    layout = catalog.layout
    manifest_key = layout.backup_file(info.backup_id, PGVAULT_MANIFEST)
    summary = BackupSummary(
        server=catalog.server,
        backup_id=info.backup_id,
        name=info.backup_name,
        status=info.status,
        kind=_kind(info),
        begin_time=info.begin_time,
        end_time=info.end_time,
        begin_wal=info.begin_wal,
        end_wal=info.end_wal,
        begin_lsn=info.begin_xlog,
        end_lsn=info.end_xlog,
        timeline=info.timeline,
        stored_size=sum(o.size for o in objects),
        data_size=info.cluster_size,
        compression=_compression(info, objects),
        keep=catalog.keep_targets().get(info.backup_id),
        written_by=PGVAULT if any(o.key == manifest_key for o in objects) else BARMAN,
        error=info.error,
        system_identifier=info.systemid,
        postgres_version=info.version,
        parent_backup_id=info.parent_backup_id,
        abandoned=_abandoned(catalog, info),
        deleting=info.deleting,
        tier=ARCHIVE if info.backup_id in catalog.archived() else STANDARD,
        copies=catalog.copies().get(info.backup_id, ()),
        encrypted=catalog.is_encrypted(info.backup_id),
    )
    return _with_chain(catalog, summary) if summary.parent_backup_id else summary


def _abandoned(catalog: Catalog, info: BackupInfo) -> str | None:
    verdict = catalog.owner(info)
    return verdict.reason if verdict is not None and verdict.abandoned else None


def _with_chain(
    catalog: Catalog, summary: BackupSummary, manifest: PgvaultManifest | None = None
) -> BackupSummary:
    """An incremental's kind, chain and method, from its pgvault.json (read only for these)."""
    if manifest is None:
        try:
            manifest = catalog.pgvault_manifest(summary.backup_id)
        except PgvaultError:  # damaged or undecryptable: the clear kind and backup.info's links
            kind = recorded_kind(catalog, summary.backup_id) or summary.kind
            chain = ancestors(summary.backup_id, parent_links(catalog))
            return replace(summary, kind=kind, chain=chain)
    record = (manifest.incremental if manifest else None) or {}
    if not record:
        return summary
    if record.get("kind") == FULL:
        return replace(summary, fallback=record.get("fallback"))
    return replace(
        summary,
        kind=str(record.get("kind", summary.kind)),
        chain=tuple(record.get("chain", ())),
        method=record.get("method"),
    )


def list_backups(store: ObjectStore, server: str) -> BackupListing:
    """Every readable backup of a server, oldest first."""
    catalog = Catalog(store, server)
    infos = catalog.backups()
    return BackupListing(
        server=server,
        backups=tuple(summarise(catalog, info) for info in infos),
        unreadable=tuple(catalog.unreadable),
        broken=tuple(sorted(catalog.broken.items())),
        infos=tuple(infos),
    )


def barman_json(info: BackupInfo) -> dict[str, Any]:
    """A backup.info as barman-cloud-backup-list/-show --format json print it (3.19)."""
    data: dict[str, Any] = {}
    for key, value in sorted(_info_fields(info).items()):
        data[key] = value
    data["backup_id"] = info.backup_id
    if info.begin_time is not None:
        data["begin_time"] = info.begin_time.ctime()
        data["begin_time_iso"] = info.begin_time.isoformat()
    if info.end_time is not None:
        data["end_time"] = info.end_time.ctime()
        data["end_time_iso"] = info.end_time.isoformat()
    return data


def _info_fields(info: BackupInfo) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in fields(info):
        if f.name in ("backup_id", "extra"):
            continue
        value = getattr(info, f.name)
        if value is None and f.name in ("backup_name", "snapshots_info"):
            continue
        if f.name == "tablespaces" and value is not None:
            value = [[t.name, t.oid, t.location] for t in value]
        elif f.name == "backup_label" and value is not None:
            value = repr(value)  # barman prints the field as it is stored
        values[f.name] = value
    values.update(info.extra)
    return values


# ---- show ---------------------------------------------------------------------------------------


def wal_needed(info: BackupInfo, manifest: PgvaultManifest | None) -> WalNeeded:
    """The segments (and ranges) a backup needs to reach consistency."""
    size = info.xlog_segment_size or DEFAULT_SEGMENT_SIZE
    ranges: list[tuple[int, str, str]] = []
    if manifest is not None:
        for item in manifest.postgres.get("wal_ranges", []) or []:
            ranges.append((int(item["timeline"]), str(item["start"]), str(item["end"])))
    segments: list[str] = []
    if ranges:
        for timeline, start_lsn, end_lsn in reversed(ranges):  # oldest timeline first
            first = parse_lsn(start_lsn) // size
            last = max(first, (parse_lsn(end_lsn) - 1) // size)
            segments += [segment_name(timeline, n, size) for n in range(first, last + 1)]
    elif info.begin_wal and is_segment(info.begin_wal):
        begin = Segment.parse(info.begin_wal, size)
        if info.end_wal and is_segment(info.end_wal):
            end = Segment.parse(info.end_wal, size)
            if end.timeline == begin.timeline:
                segments = [
                    segment_name(begin.timeline, n, size) for n in range(begin.segno, end.segno + 1)
                ]
            else:
                segments = [info.begin_wal, info.end_wal]
        else:
            segments = [info.begin_wal]
    return WalNeeded(
        timeline=info.timeline,
        begin_wal=info.begin_wal,
        end_wal=info.end_wal,
        begin_lsn=info.begin_xlog,
        end_lsn=info.end_xlog,
        ranges=tuple(ranges),
        segments=tuple(dict.fromkeys(segments)),
    )


def _manifest_summary(manifest: PgvaultManifest, has_pg_manifest: bool) -> ManifestSummary:
    pg = manifest.postgres
    return ManifestSummary(
        pgvault_version=manifest.pgvault_version,
        state=manifest.state,
        started=manifest.started,
        finished=manifest.finished,
        checksum_algorithm=manifest.checksum_algorithm,
        compression=manifest.compression,
        compression_level=manifest.compression_level,
        files=len(manifest.files),
        data_bytes=sum(f.size for f in manifest.files),
        postgres_version_text=pg.get("version_text"),
        data_checksums=pg.get("data_checksums"),
        block_size=pg.get("block_size"),
        segment_size=pg.get("segment_size"),
        excluded=tuple(sorted(manifest.excluded.items())),
        has_backup_manifest=has_pg_manifest,
    )


def show_backup(store: ObjectStore, server: str, reference: str) -> BackupDetails:
    """One backup in full: an ID, a name, or latest/oldest/last-failed."""
    catalog = Catalog(store, server)
    info = catalog.resolve(reference)
    objects = catalog.objects().get(info.backup_id, ())
    layout = catalog.layout
    warnings: list[str] = []
    manifest: PgvaultManifest | None = None
    try:
        manifest = catalog.pgvault_manifest(info.backup_id)
    except DecryptionFailed:
        raise  # no key or a wrong one: the contents need it (exit 1), not a damaged file
    except PgvaultError as exc:
        warnings.append(f"{PGVAULT_MANIFEST}: {exc}")
    records = {a.filename: a for a in manifest.archives} if manifest else {}
    sets: list[ArchiveSetSummary] = []
    archive_keys: set[str] = set()
    try:
        chained = manifest is not None and info.parent_backup_id
        listed = (
            link_sets(catalog, info, manifest) if manifest and chained else catalog.archives(info)
        )
        for archive_set in listed:
            parts = []
            for part in archive_set.parts:
                record = records.get(part.filename)
                parts.append(
                    ArchivePart(
                        filename=part.filename,
                        key=part.key,
                        stored_size=part.size,
                        checksum=record.checksum if record else None,
                        tar_size=record.tar_size if record else None,
                        files=record.files if record else None,
                    )
                )
                archive_keys.add(part.key)
            sets.append(ArchiveSetSummary(archive_set.name, archive_set.tablespace, tuple(parts)))
    except PgvaultError as exc:
        warnings.append(str(exc))
    others = tuple(o for o in objects if o.key not in archive_keys)
    has_pg_manifest = any(o.key == layout.backup_file(info.backup_id, PG_MANIFEST) for o in objects)
    return BackupDetails(
        summary=_with_chain(catalog, summarise(catalog, info), manifest),
        info=info,
        archives=tuple(sets),
        other_objects=tuple(sorted(others, key=lambda o: (o.key.endswith(BACKUP_INFO), o.key))),
        manifest=_manifest_summary(manifest, has_pg_manifest) if manifest else None,
        tablespaces=tuple(info.tablespaces or ()),
        wal=wal_needed(info, manifest),
        databases=manifest.databases if manifest else (),
        tables=manifest.tables if manifest else (),
        warnings=tuple(warnings),
    )


# ---- JSON (the documented shapes of backup-list and backup-show --format json) ------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def summary_json(summary: BackupSummary) -> dict[str, Any]:
    """pgvault's view of one backup (the `pgvault` object of each backup-list entry)."""
    data = asdict(summary)
    data["begin_time"] = _iso(summary.begin_time)
    data["end_time"] = _iso(summary.end_time)
    data["shown_status"] = summary.shown_status
    return data


def listing_json(listing: BackupListing) -> dict[str, Any]:
    """barman-cloud-backup-list's `{"backups_list": [...]}`, each entry with a `pgvault` object."""
    entries = []
    for summary, info in zip(listing.backups, listing.infos, strict=True):
        entry = barman_json(info)
        entry["pgvault"] = summary_json(summary)
        entries.append(entry)
    broken = [{"backup_id": b, "status": BROKEN, "error": why} for b, why in listing.broken]
    return {"backups_list": entries, "broken": broken}


def _tablespace_json(tablespace: Tablespace | None) -> dict[str, Any] | None:
    if tablespace is None:
        return None
    return {"name": tablespace.name, "oid": tablespace.oid, "location": tablespace.location}


def details_json(details: BackupDetails) -> dict[str, Any]:
    """backup-show --format json (pgvault's own shape, documented in the README)."""
    wal = details.wal
    return {
        "server": details.summary.server,
        "backup_id": details.summary.backup_id,
        "summary": summary_json(details.summary),
        "backup_info": barman_json(details.info),
        "manifest": asdict(details.manifest) if details.manifest else None,
        "tablespaces": [_tablespace_json(t) for t in details.tablespaces],
        "archives": [
            {
                "name": s.name,
                "tablespace": _tablespace_json(s.tablespace),
                "parts": [asdict(p) for p in s.parts],
            }
            for s in details.archives
        ],
        "objects": [{"key": o.key, "size": o.size} for o in details.other_objects],
        "wal": {
            "timeline": wal.timeline,
            "begin_wal": wal.begin_wal,
            "end_wal": wal.end_wal,
            "begin_lsn": wal.begin_lsn,
            "end_lsn": wal.end_lsn,
            "ranges": [{"timeline": t, "start": a, "end": b} for t, a, b in wal.ranges],
            "segments": list(wal.segments),
        },
        "databases": [asdict(d) for d in details.databases],
        "tables": [asdict(t) for t in details.tables],
        "warnings": list(details.warnings),
    }


__all__ = [
    "ABANDONED",
    "BARMAN",
    "BROKEN",
    "DELETING",
    "FULL",
    "INCREMENTAL",
    "PGVAULT",
    "ArchivePart",
    "ArchiveSetSummary",
    "BackupDetails",
    "BackupListing",
    "BackupSummary",
    "ManifestSummary",
    "WalNeeded",
    "barman_json",
    "details_json",
    "list_backups",
    "listing_json",
    "show_backup",
    "summarise",
    "summary_json",
    "wal_needed",
]
