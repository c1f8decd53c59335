"""What the catalog and the backup screen show of a logical backup, from its `logical.json`.

Its manifest was read with the listing, so nothing here touches a store: the databases it
holds (with the `--table` patterns it was limited to) and each table's row estimate and
size at backup time.
"""

from __future__ import annotations

from rich.text import Text

from core.catalog.listing import BROKEN
from core.logical.attempt import UNFINISHED
from core.logical.manifest import LogicalManifest, TableEntry
from tui import fmt
from tui.widgets.table import Col

LOGICAL_TABLE_COLUMNS = (
    Col("database", "DATABASE", 9, min_width=50),
    Col("table", "TABLE", 16, flex=True),
    Col("rows", "ROWS", 9, right=True),
    Col("size", "SIZE", 9, right=True),
)

KIND = "logical"
#: the rows whose logical.json says nothing: not written yet, or unreadable
UNKNOWN = UNFINISHED | {BROKEN}

#: what a logical row shows in the table's WAL column: it needs none
NO_WAL = "-"


def holds(manifest: LogicalManifest) -> str:
    """'shöp (9 tables)', 'shöp: sales.* (4 tables)', 'app, shop (2 databases, 21 tables)'."""
    if manifest.status in UNFINISHED:
        return "no logical.json yet: a running backup, or what an interrupted one left"
    if manifest.status == BROKEN:
        return "its logical.json cannot be read: nothing of it can be restored"
    if not manifest.databases:
        # LOCKED: an encrypted manifest this console holds no key for
        return "encrypted: its key shows what it holds" if manifest.encrypted else "nothing"
    tables = sum(len(d.tables) for d in manifest.databases)
    if len(manifest.databases) == 1:
        db = manifest.databases[0]
        patterns = f": {' '.join(db.patterns)}" if db.patterns else ""
        return f"{db.name}{patterns} ({tables} tables)"
    names = ", ".join(d.name for d in manifest.databases)
    return f"{names} ({len(manifest.databases)} databases, {tables} tables)"


def rows_estimate(value: int | None) -> str:
    """pg_class.reltuples: '-' when the table was never analysed."""
    if value is None or value < 0:
        return "-"
    return f"{value:,}".replace(",", " ")


def table_cells(database: str, table: TableEntry) -> dict[str, Text]:
    name = table.name if table.schema == "public" else table.qualified
    return {
        "database": Text(database),
        "table": Text(name),
        "rows": Text(rows_estimate(table.rows_estimate), justify="right"),
        "size": Text(fmt.size(table.size), justify="right"),
    }


def table_rows(manifest: LogicalManifest, terms: list[str]) -> list[tuple[str, dict[str, Text]]]:
    """Every table of every database, largest first, those matching the filter's words."""
    tables = [(d.name, t) for d in manifest.databases for t in d.tables]
    tables.sort(key=lambda pair: -pair[1].size)
    rows = []
    for index, (database, table) in enumerate(tables):
        haystack = f"{database} {table.schema} {table.name}".lower()
        if all(term in haystack for term in terms):
            rows.append((str(index), table_cells(database, table)))
    return rows


def database_rows(manifest: LogicalManifest) -> list[tuple[str, dict[str, Text]]]:
    return [
        (d.name, {"name": Text(d.name), "size": Text(fmt.size(d.data_size), justify="right")})
        for d in sorted(manifest.databases, key=lambda d: -d.data_size)
    ]


def details(manifest: LogicalManifest) -> Text:
    """The lines under a logical backup's heading: what it holds and how it was written."""
    text = Text()
    text.append(f"holds {holds(manifest)}\n")
    text.append(f"compression {manifest.compression or 'none'}  -J {manifest.jobs}")
    if manifest.encrypted:
        text.append("  encrypted")
    if manifest.globals_file:
        text.append(f"  with {manifest.globals_file} (roles, tablespaces)")
    text.append("\n")
    if manifest.server_version:
        version = fmt.pg_version(manifest.server_version)
        text.append(f"PostgreSQL {version}, {manifest.pg_dump_version}\n", style="dim")
    return text
