"""`pgvault --batch backup-list [flags] SOURCE_URL SERVER_NAME [--format console|json]`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from core.errors import ExitCode, OperationFailed
from core.units import format_size
from tui.batch.catalog_options import add_format, add_source, connectivity_test, opened
from tui.batch.main import Context

if TYPE_CHECKING:
    from core.catalog.listing import BackupListing
    from core.logical.attempt import Unfinished
    from core.logical.catalog import LogicalListing
    from core.logical.manifest import LogicalManifest

COLUMNS = (
    "Backup ID",
    "Name",
    "Status",
    "Kind",
    "Begin time",
    "End time",
    "Begin WAL",
    "End WAL",
    "TLI",
    "Stored",
    "Data",
    "Compression",
    "Keep",
    "Tier",
    "Copies",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source(parser, "List the backups of SERVER_NAME, oldest first.")
    add_format(parser)


def _time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> list[str]:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


LOGICAL_COLUMNS = (
    "Backup ID",
    "Name",
    "Status",
    "Kind",
    "Databases",
    "Tables",
    "Begin time",
    "End time",
    "Stored",
    "Data",
    "Compression",
    "Copies",
)


def _iso_time(iso: str) -> str:
    return iso[:19].replace("T", " ")


def logical_lines(
    listing: LogicalListing,
    unfinished: Sequence[Unfinished] = (),
    copies: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Finished backups, BROKEN ones and, by ID, those without logical.json (never
    restorable)."""
    from core.catalog.listing import BROKEN

    copies = copies or {}
    rows = [_logical_row(m, listing, copies) for m in listing.backups]
    rows += [
        (u.backup_id, "-", u.status, "logical", *(["-"] * 4), format_size(u.size), "-", "-", "-")
        for u in unfinished
    ]
    rows += [(b, "-", BROKEN, "logical", *(["-"] * 8)) for b, _ in listing.broken]
    rows.sort(key=lambda row: row[0])
    return ["Logical backups:", *table(rows, LOGICAL_COLUMNS)]


def _logical_row(
    m: LogicalManifest, listing: LogicalListing, copies: Mapping[str, Sequence[str]]
) -> tuple[str, ...]:
    """A LOCKED backup shows what its object names and sizes tell, `locked` for the rest."""
    from core.logical.catalog import LOCKED

    count = str(len(copies[m.backup_id])) if copies.get(m.backup_id) else "-"
    age = "+age" if m.encrypted else ""
    facts = listing.locked.get(m.backup_id)
    if m.status == LOCKED:
        codec = (facts.compression or "none") + age if facts and facts.compression_known else "-"
        return (
            m.backup_id, "locked", m.status, m.kind,
            ",".join(facts.databases) if facts else "locked", "locked", "-", "-",
            format_size(facts.stored_size) if facts else "-", "-", codec, count,
        )  # fmt: skip
    return (
        m.backup_id,
        m.name or "-",
        m.status,
        m.kind,
        ",".join(d.name for d in m.databases),
        ",".join(p for d in m.databases for p in d.patterns) or "all",
        _iso_time(m.started),
        _iso_time(m.finished),
        format_size(m.stored_size),
        format_size(m.data_size),
        (m.compression or "none") + age,
        count,
    )


def _json(
    listing: BackupListing,
    logical: LogicalListing,
    unfinished: Sequence[Unfinished],
    copies: Mapping[str, Sequence[str]],
) -> dict[str, object]:
    """barman-cloud's listing with pgvault's view, and the logical backups (with copies);
    a BROKEN logical backup joins the physical ones in `broken`."""
    from core.catalog.listing import BROKEN, listing_json
    from core.logical.attempt import unfinished_row
    from core.logical.catalog import summary_row

    rows = [
        {
            **summary_row(m, logical.locked.get(m.backup_id)),
            "copies": list(copies.get(m.backup_id, ())),
        }
        for m in logical.backups
    ]
    rows += [{**unfinished_row(u), "copies": []} for u in unfinished]
    physical = listing_json(listing)
    broken = [
        {"backup_id": b, "status": BROKEN, "error": why, "kind": "logical"}
        for b, why in logical.broken
    ]
    return {
        **physical,
        "broken": [*physical["broken"], *broken],
        "logical_backups": sorted(rows, key=lambda row: str(row["backup_id"])),
    }


def _broken_row(backup_id: str, width: int) -> tuple[str, ...]:
    """A backup whose backup.info cannot be read: its ID and BROKEN, the rest unknown."""
    from core.catalog.listing import BROKEN

    return (backup_id, "-", BROKEN, *(["-"] * (width - 3)))


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.test:
        connectivity_test(args)
        return ExitCode.OK
    from core.catalog.browse import list_servers, no_backups_here
    from core.catalog.copies import read_copies
    from core.catalog.listing import list_backups
    from core.logical.attempt import list_unfinished
    from core.logical.catalog import read_logical

    with opened(args) as store:
        listing = list_backups(store, args.server_name)
        logical = read_logical(store, args.server_name)
        copies = read_copies(store, args.server_name) if logical.backups else {}
        unfinished = list_unfinished(store, args.server_name)
        known = any((listing.backups, listing.broken, logical.backups, logical.broken, unfinished))
        if not known and args.server_name not in list_servers(store):
            # A mistyped name must not read as "no backups yet": name those that are there.
            raise OperationFailed(no_backups_here(store, args.server_name))
    if args.format == "json":
        print(json.dumps(_json(listing, logical, unfinished, copies)))
        return ExitCode.OK
    rows = _physical_rows(listing)
    rows += [_broken_row(backup_id, len(COLUMNS)) for backup_id, _ in listing.broken]
    rows = _as_tree(listing, rows)
    for backup_id, why in listing.broken:
        print(f"backup {backup_id} is broken: {why}", file=sys.stderr)
    for backup_id, why in logical.broken:
        print(f"logical backup {backup_id} is broken: {why}", file=sys.stderr)
    if any(b.parent_backup_id for b in listing.backups):  # chains: who builds on whom, and how
        by_id = {b.backup_id: b for b in listing.backups}
        rows = [
            (
                *row,
                *(
                    (by_id[key].parent_backup_id or "-", by_id[key].method or "-")
                    if (key := _backup_id(row)) in by_id
                    else ("-", "-")
                ),
            )
            for row in rows
        ]
        header: tuple[str, ...] = (*COLUMNS, "Parent", "Method")
    else:
        header = COLUMNS
    if rows:
        print("\n".join(table(rows, header)))
    if logical.backups or logical.broken or unfinished:
        lines = logical_lines(logical, unfinished, copies)
        print("\n".join(([""] if rows else []) + lines))
    if not rows and not logical.backups and not logical.broken and not unfinished:
        print(f"no backups of server {args.server_name}", file=sys.stderr)
    return ExitCode.OK


def _as_tree(listing: BackupListing, rows: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Rows oldest first, each incremental under its parent with a `├─ `/`└─ ` prefix."""
    from core.catalog.chains import tree_lines

    by_id = {row[0]: row for row in rows}
    parents = {b.backup_id: b.parent_backup_id for b in listing.backups}
    lines = tree_lines([(backup_id, parents.get(backup_id)) for backup_id in by_id])
    return [(prefix + backup_id, *by_id[backup_id][1:]) for backup_id, prefix in lines]


def _backup_id(row: Sequence[str]) -> str:
    """A row's backup ID, without its tree prefix."""
    return row[0].rsplit(" ", 1)[-1]


def _physical_rows(listing: BackupListing) -> list[tuple[str, ...]]:
    return [
        (
            b.backup_id,
            b.name or "-",
            b.shown_status,
            b.kind,
            _time(b.begin_time),
            _time(b.end_time),
            b.begin_wal or "-",
            b.end_wal or "-",
            str(b.timeline) if b.timeline is not None else "-",
            format_size(b.stored_size),
            format_size(b.data_size) if b.data_size is not None else "-",
            (b.compression or "none") + ("+age" if b.encrypted else ""),
            b.keep or "-",
            b.tier,
            str(len(b.copies)) if b.copies else "-",
        )
        for b in listing.backups
    ]
