"""`pgvault --batch backup-list [flags] SOURCE_URL SERVER_NAME [--format console|json]`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime

from core.errors import ExitCode
from tui.batch.catalog_options import add_format, add_source, connectivity_test, opened
from tui.batch.main import Context

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


def _broken_row(backup_id: str, width: int) -> tuple[str, ...]:
    """A backup whose backup.info cannot be read: its ID and BROKEN, the rest unknown."""
    from core.catalog.listing import BROKEN

    return (backup_id, "-", BROKEN, *(["-"] * (width - 3)))


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.test:
        connectivity_test(args)
        return ExitCode.OK
    from core.catalog.listing import list_backups, listing_json
    from core.sizes import format_size

    with opened(args) as store:
        listing = list_backups(store, args.server_name)
    if args.format == "json":
        print(json.dumps(listing_json(listing)))
        return ExitCode.OK
    rows: list[tuple[str, ...]] = [
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
            b.compression or "none",
            b.keep or "-",
        )
        for b in listing.backups
    ]
    rows += [_broken_row(backup_id, len(COLUMNS)) for backup_id, _ in listing.broken]
    rows.sort(key=lambda row: row[0])
    for backup_id, why in listing.broken:
        print(f"backup {backup_id} is broken: {why}", file=sys.stderr)
    if any(b.parent_backup_id for b in listing.backups):  # chains: who builds on whom, and how
        by_id = {b.backup_id: b for b in listing.backups}
        rows = [
            (
                *row,
                *(
                    (by_id[row[0]].parent_backup_id or "-", by_id[row[0]].method or "-")
                    if row[0] in by_id
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
    else:
        print(f"no backups of server {args.server_name}", file=sys.stderr)
    return ExitCode.OK
