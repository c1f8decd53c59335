"""`pgvault --batch backup-show [flags] SOURCE_URL SERVER_NAME BACKUP [--format console|json]`."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from core.errors import ExitCode
from tui.batch.backup_list import table
from tui.batch.catalog_options import add_format, add_source, connectivity_test, opened
from tui.batch.encryption_options import add_unlock, apply_unlock
from tui.batch.main import Context
from tui.batch.options import backup_reference
from tui.fmt import pg_version

if TYPE_CHECKING:
    from core.catalog.listing import BackupDetails, BackupSummary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source(
        parser,
        "Show one backup: its backup.info, its stored objects, the WAL it needs, and the "
        "databases and tables it holds with their sizes at backup time.",
    )
    parser.add_argument(
        "backup_id",
        type=backup_reference,
        metavar="BACKUP",
        help="a backup ID, a backup name, or latest/last, oldest/first, last-failed",
    )
    parser.add_argument(
        "--logical",
        action="store_true",
        help="BACKUP names a logical backup: by its name or latest (a logical ID needs no flag)",
    )
    add_format(parser)
    add_unlock(parser)


def _size(value: int | None) -> str:
    from core.units import format_size

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
    out = [f"Backup {details.summary.backup_id}:"]
    sections = (_overview, _base_backup, _snapshots, _wal, _tablespaces, _manifest, _objects)
    for section in (*sections, _contents):
        section(out, details)
    out += [f"  warning: {warning}" for warning in details.warnings]
    return out


def _field(out: list[str], label: str, value: object) -> None:
    out.append(f"  {label:<23}: {value if value not in (None, '') else '-'}")


def _heading(out: list[str], title: str) -> None:
    out += ["", f"  {title}:"]


def _overview(out: list[str], details: BackupDetails) -> None:
    s, info = details.summary, details.info
    _field(out, "Server", s.server)
    _field(out, "Name", s.name)
    why = s.abandoned or s.error
    _field(out, "Status", s.shown_status + (f" ({why})" if why else ""))
    _field(out, "Kind", s.kind)
    for label, value in _chain_fields(s):
        _field(out, label, value)
    _field(out, "Keep", s.keep or "nokeep")
    _field(out, "Tier", s.tier)
    _field(out, "Copies", ", ".join(s.copies) or "none")
    _field(out, "Written by", s.written_by)
    _field(out, "System identifier", s.system_identifier)
    _field(out, "PostgreSQL version", pg_version(info.version))
    _field(out, "PGDATA directory", info.pgdata)
    _field(out, "Cluster size", _size(s.data_size))
    _field(out, "Stored size", _size(s.stored_size))
    _field(out, "Compression", s.compression or "none")
    _field(out, "Data checksums", info.data_checksums)


def _base_backup(out: list[str], details: BackupDetails) -> None:
    s, info = details.summary, details.info
    _heading(out, "Base backup information")
    _field(out, "Timeline", s.timeline)
    _field(out, "Begin time", s.begin_time)
    _field(out, "End time", s.end_time)
    _field(out, "Begin LSN", s.begin_lsn)
    _field(out, "End LSN", s.end_lsn)
    _field(out, "Begin WAL", s.begin_wal)
    _field(out, "End WAL", s.end_wal)
    if info.copy_stats:
        _field(out, "Copy time (s)", info.copy_stats.get("copy_time"))


def _snapshots(out: list[str], details: BackupDetails) -> None:
    """A snapshot backup's disks, as snapshots_info records them (barman's or pgvault's)."""
    if not details.info.snapshots_info:
        return
    from core.errors import PgvaultError
    from core.snapshots.info import describe, load

    _heading(out, "Snapshots")
    try:
        lines = describe(load(details.info.snapshots_info))
    except PgvaultError as exc:
        lines = [str(exc)]
    _field(out, "Provider", lines[0])
    for line in lines[1:]:
        out.append(f"    {line}")


def _wal(out: list[str], details: BackupDetails) -> None:
    wal = details.wal
    _heading(out, "WAL needed to restore it (to consistency)")
    for timeline, start, end in wal.ranges:
        _field(out, f"Timeline {timeline}", f"{start} .. {end}")
    if wal.segments:
        first, last = wal.segments[0], wal.segments[-1]
        _field(out, "Segments", f"{first} .. {last} ({len(wal.segments)})")


def _tablespaces(out: list[str], details: BackupDetails) -> None:
    if details.tablespaces:
        _heading(out, "Tablespaces")
        for t in details.tablespaces:
            _field(out, t.name, f"{t.location} (oid: {t.oid})")


def _manifest(out: list[str], details: BackupDetails) -> None:
    m = details.manifest
    if m is None:
        return
    _heading(out, "Manifest (pgvault.json)")
    _field(out, "pgvault version", m.pgvault_version)
    _field(out, "Started", m.started)
    _field(out, "Finished", m.finished)
    _field(out, "Files", f"{m.files} ({_size(m.data_bytes)})")
    _field(out, "Checksum algorithm", m.checksum_algorithm)
    if m.compression_level is not None:
        _field(out, "Compression level", m.compression_level)
    _field(out, "backup_manifest", "present" if m.has_backup_manifest else "missing")
    if m.excluded:
        _field(out, "Excluded", ", ".join(f"{k} {v}" for k, v in m.excluded))


def _objects(out: list[str], details: BackupDetails) -> None:
    s = details.summary
    _heading(out, "Stored objects")
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


def _contents(out: list[str], details: BackupDetails) -> None:
    if not (details.databases or details.tables):
        if details.manifest is None:
            out.append("")
            out.append("  Databases and tables: not recorded (barman-cloud writes no pgvault.json)")
        return
    _heading(out, "Databases (size at backup time)")
    databases = [(d.name, str(d.oid), _size(d.size)) for d in details.databases]
    out += ["    " + line for line in table(databases, ("Database", "OID", "Size"))]
    _heading(out, "Tables (size at backup time, with indexes and TOAST)")
    tables = [
        (t.database, t.schema, t.name, t.kind, t.persistence, t.tablespace or "-", _size(t.size))
        for t in details.tables
    ]
    headers = ("Database", "Schema", "Table", "Kind", "Persistence", "Tablespace", "Size")
    out += ["    " + line for line in table(tables, headers)]


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.test:
        connectivity_test(args)
        return ExitCode.OK
    from core.catalog.listing import details_json, show_backup
    from core.logical.layout import is_logical_id

    apply_unlock(args)
    if args.logical or is_logical_id(args.backup_id):
        return _show_logical(args)
    with opened(args) as store:
        details = show_backup(store, args.server_name, args.backup_id)
    if args.format == "json":
        print(json.dumps(details_json(details)))
    else:
        print("\n".join(render(details)))
    return ExitCode.OK


def _show_logical(args: argparse.Namespace) -> int:
    from core.catalog.copies import read_copies
    from core.logical.catalog import manifest_json, resolve_logical
    from tui.batch.logical_catalog import show_lines

    with opened(args) as store:
        manifest = resolve_logical(store, args.server_name, args.backup_id)
        copies = read_copies(store, args.server_name).get(manifest.backup_id, ())
    if args.format == "json":
        data = {**manifest_json(manifest), "copies": list(copies)}
        print(json.dumps(data, ensure_ascii=False))
    else:
        print("\n".join(show_lines(manifest, copies)))
    return ExitCode.OK
