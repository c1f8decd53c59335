"""A logical backup as backup-show prints it (backup-list's lines are in backup_list)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.units import format_size
from tui.batch.backup_list import table

if TYPE_CHECKING:
    from collections.abc import Sequence

    from core.logical.manifest import LogicalManifest


def show_lines(m: LogicalManifest, copies: Sequence[str] = ()) -> list[str]:
    """The backup and its second copies' URLs, as backup-show prints a physical one's."""
    out = [f"Backup {m.backup_id}:"]
    for label, value in (
        ("Server", m.server),
        ("Name", m.name),
        ("Status", m.status),
        ("Kind", m.kind),
        ("Copies", ", ".join(copies) or "none"),
        ("Begin time", m.started),
        ("End time", m.finished),
        ("PostgreSQL version", f"{m.server_version} ({m.server_version_text.split(',')[0]})"),
        ("pg_dump", m.pg_dump_version),
        ("Compression", m.compression or "none"),
        ("Parallel jobs", m.jobs),
        ("Stored size", format_size(m.stored_size)),
        ("Globals", m.globals_file),
    ):
        out.append(f"  {label:<23}: {value if value not in (None, '') else '-'}")
    for d in m.databases:
        out += ["", f"  Database {d.name} ({d.encoding}, {format_size(d.size)} at backup time):"]
        if d.patterns:
            out.append(f"    limited to: {' '.join(d.patterns)} ({format_size(d.data_size)})")
        rows = [
            (
                t.schema,
                t.name,
                str(t.rows_estimate) if t.rows_estimate is not None else "-",
                format_size(t.size),
            )
            for t in d.tables
        ]
        out += [
            "    " + line for line in table(rows, ("Schema", "Table", "Rows (estimate)", "Size"))
        ]
        out.append(f"    {len(d.files)} files, {format_size(d.stored_size)} stored")
    return out
