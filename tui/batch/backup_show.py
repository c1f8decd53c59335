"""`pgvault --batch backup-show [flags] SOURCE_URL SERVER_NAME BACKUP [--format console|json]`."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from core.errors import ExitCode
from tui.batch.backup_list import table
from tui.batch.catalog_options import add_format, add_source, connectivity_test, opened
from tui.batch.main import Context

if TYPE_CHECKING:
    from core.listing import BackupDetails, BackupSummary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source(
        parser,
        "Show one backup: its backup.info, its stored objects, the WAL it needs, and the "
        "databases and tables it holds with their sizes at backup time.",
    )
    parser.add_argument(
        "backup_id",
        metavar="BACKUP",
        help="a backup ID, a backup name, or latest/last, oldest/first, last-failed",
    )
    add_format(parser)


def _size(value: int | None) -> str:
    from core.sizes import format_size

    return format_size(value) if value is not None else "-"


def _chain_fields(s: BackupSummary) -> list[tuple[str, object]]:
    """An incremental's parent, chain and method; why a full backup was not incremental."""
    found: list[tuple[str, object]] = []
    if s.chain:  # nothing is added to a plain full backup's output
        found.append(("Parent", s.parent_backup_id))
        found.append(("Chain", " > ".join([*s.chain, s.backup_id])))
        found.append(("Changes found by", s.method))
    if s.fallback:
        found.append(("Full, not incremental", s.fallback))
    return found


def render(details: BackupDetails) -> list[str]:
    """The console form of backup-show."""
    s, info = details.summary, details.info
    out = [f"Backup {s.backup_id}:"]

    def field(label: str, value: object) -> None:
        out.append(f"  {label:<23}: {value if value not in (None, '') else '-'}")

    field("Server", s.server)
    field("Name", s.name)
    field("Status", s.status + (f" ({s.error})" if s.error else ""))
    field("Kind", s.kind)
    for label, value in _chain_fields(s):
        field(label, value)
    field("Keep", s.keep or "nokeep")
    field("Written by", s.written_by)
    field("System identifier", s.system_identifier)
    field("PostgreSQL version", info.version)
    field("PGDATA directory", info.pgdata)
    field("Cluster size", _size(s.data_size))
    field("Stored size", _size(s.stored_size))
    field("Compression", s.compression or "none")
    field("Data checksums", info.data_checksums)
    out.append("")
    out.append("  Base backup information:")
    field("Timeline", s.timeline)
    field("Begin time", s.begin_time)
    field("End time", s.end_time)
    field("Begin LSN", s.begin_lsn)
    field("End LSN", s.end_lsn)
    field("Begin WAL", s.begin_wal)
    field("End WAL", s.end_wal)
    if info.copy_stats:
        field("Copy time (s)", info.copy_stats.get("copy_time"))
    wal = details.wal
    out.append("")
    out.append("  WAL needed to restore it (to consistency):")
    for timeline, start, end in wal.ranges:
        field(f"Timeline {timeline}", f"{start} .. {end}")
    if wal.segments:
        first, last = wal.segments[0], wal.segments[-1]
        field("Segments", f"{first} .. {last} ({len(wal.segments)})")
    if details.tablespaces:
        out.append("")
        out.append("  Tablespaces:")
        for t in details.tablespaces:
            field(t.name, f"{t.location} (oid: {t.oid})")
    if details.manifest is not None:
        m = details.manifest
        out.append("")
        out.append("  Manifest (pgvault.json):")
        field("pgvault version", m.pgvault_version)
        field("Started", m.started)
        field("Finished", m.finished)
        field("Files", f"{m.files} ({_size(m.data_bytes)})")
        field("Checksum algorithm", m.checksum_algorithm)
        if m.compression_level is not None:
            field("Compression level", m.compression_level)
        field("backup_manifest", "present" if m.has_backup_manifest else "missing")
        if m.excluded:
            field("Excluded", ", ".join(f"{k} {v}" for k, v in m.excluded))
    out.append("")
    out.append("  Stored objects:")
    rows = []
    for archive_set in details.archives:
        where = "PGDATA" if archive_set.tablespace is None else archive_set.tablespace.name
        for part in archive_set.parts:
            rows.append(
                (
                    part.filename,
                    where,
                    _size(part.stored_size),
                    _size(part.tar_size),
                    str(part.files) if part.files is not None else "-",
                    part.checksum or "-",
                )
            )
    prefix = f"{s.server}/base/{s.backup_id}/"
    for obj in details.other_objects:
        name = obj.key[len(prefix) :] if obj.key.startswith(prefix) else obj.key
        rows.append((name, "-", _size(obj.size), "-", "-", "-"))
    out += [
        "    " + line
        for line in table(rows, ("Object", "Holds", "Stored", "Uncompressed", "Files", "Checksum"))
    ]
    if details.databases or details.tables:
        out.append("")
        out.append("  Databases (size at backup time):")
        out += [
            "    " + line
            for line in table(
                [(d.name, str(d.oid), _size(d.size)) for d in details.databases],
                ("Database", "OID", "Size"),
            )
        ]
        out.append("")
        out.append("  Tables (size at backup time, with indexes and TOAST):")
        out += [
            "    " + line
            for line in table(
                [
                    (
                        t.database,
                        t.schema,
                        t.name,
                        t.kind,
                        t.persistence,
                        t.tablespace or "-",
                        _size(t.size),
                    )
                    for t in details.tables
                ],
                ("Database", "Schema", "Table", "Kind", "Persistence", "Tablespace", "Size"),
            )
        ]
    elif details.manifest is None:
        out.append("")
        out.append("  Databases and tables: not recorded (barman-cloud writes no pgvault.json)")
    for warning in details.warnings:
        out.append(f"  warning: {warning}")
    return out


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.test:
        connectivity_test(args)
        return ExitCode.OK
    from core.listing import details_json, show_backup

    with opened(args) as store:
        details = show_backup(store, args.server_name, args.backup_id)
    if args.format == "json":
        print(json.dumps(details_json(details)))
    else:
        print("\n".join(render(details)))
    return ExitCode.OK
