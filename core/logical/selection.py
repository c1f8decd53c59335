"""Which entries of a pg_dump archive a table restore needs, as a `pg_restore -L` list.

`pg_restore -t` alone emits only CREATE TABLE and its data; a table restore here also
takes what belongs to the table (the seed's dependent-object rules): its column defaults,
constraints, indexes, triggers, policies and rules, the sequences it owns with their
values, and its foreign keys unless told to skip them. Views and other tables are left
out. The entries are matched by the names `pg_restore -l` prints and by the indexes and
owned sequences the manifest recorded for each table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from core.logical.manifest import DumpFile, TableEntry

_LINE_RE = re.compile(r"^(?P<id>\d+); \d+ \d+ (?P<rest>.*)$")
# longest first: "TABLE DATA" before "TABLE"
_DESCS = (
    "SEQUENCE OWNED BY",
    "TABLE ATTACH",
    "INDEX ATTACH",
    "FK CONSTRAINT",
    "SEQUENCE SET",
    "TABLE DATA",
    "CONSTRAINT",
    "SEQUENCE",
    "TRIGGER",
    "DEFAULT",
    "POLICY",
    "INDEX",
    "TABLE",
    "RULE",
)
_OWN_TAG = ("TABLE", "TABLE DATA", "TABLE ATTACH")
_TABLE_PREFIXED = ("DEFAULT", "CONSTRAINT", "FK CONSTRAINT", "TRIGGER", "POLICY", "RULE")
_SEQUENCE = ("SEQUENCE", "SEQUENCE SET", "SEQUENCE OWNED BY")
#: a partition's ATTACH PARTITION and its indexes' ATTACH: kept when its parent comes too
_ATTACH = ("TABLE ATTACH", "INDEX ATTACH")


@dataclass(frozen=True)
class Selection:
    listing: str  # the -L file: every line, the unwanted ones commented out
    data_ids: tuple[int, ...]  # TABLE DATA entries kept (their files must be present)
    entries: int


def _entry(line: str) -> tuple[int, str, str] | None:
    """(dump ID, description, 'schema tag' without the owner) of a listing line."""
    match = _LINE_RE.match(line)
    if not match:
        return None
    rest = match["rest"]
    for desc in _DESCS:
        if rest.startswith(desc + " "):
            return int(match["id"]), desc, rest[len(desc) + 1 :].rsplit(" ", 1)[0]
    return None


def _wanted(desc: str, name: str, table: TableEntry, foreign_keys: bool) -> bool:
    own = f"{table.schema} {table.name}"
    if desc in _OWN_TAG:
        return name == own
    if desc in _TABLE_PREFIXED:
        return name.startswith(own + " ") and (foreign_keys or desc != "FK CONSTRAINT")
    if desc in ("INDEX", "INDEX ATTACH"):
        return name in {f"{table.schema} {index}" for index in table.indexes}
    if desc in _SEQUENCE:
        return name in {f"{s} {n}" for s, n in table.sequences}
    return False


def select_entries(
    listing: str, tables: Iterable[TableEntry], foreign_keys: bool = True
) -> Selection:
    chosen = tuple(tables)
    names = {(t.schema, t.name) for t in chosen}
    # a partition restored without its partitioned table stays a table of its own
    attachable = tuple(t for t in chosen if t.partition_of in names)
    lines, data_ids, kept = [], [], 0
    for line in listing.splitlines():
        entry = _entry(line)
        if entry is None:
            lines.append(line if line.startswith(";") or not line.strip() else ";" + line)
            continue
        dump_id, desc, name = entry
        among = attachable if desc in _ATTACH else chosen
        if any(_wanted(desc, name, t, foreign_keys) for t in among):
            lines.append(line)
            kept += 1
            if desc == "TABLE DATA":
                data_ids.append(dump_id)
        else:
            lines.append(";" + line)
    return Selection("\n".join(lines) + "\n", tuple(data_ids), kept)


def database_listing(listing: str, tables: Iterable[TableEntry], foreign_keys: bool) -> str:
    """A whole database's `-L` list: every entry but the foreign keys when left out, and a
    partition's ATTACH when its partitioned table is not in the backup (a --table backup of
    a partition alone: its ATTACH PARTITION would name a table that is not there)."""
    held = tuple(tables)
    names = {(t.schema, t.name) for t in held}
    orphans = tuple(t for t in held if t.partition_of is not None and t.partition_of not in names)
    lines = []
    for line in listing.splitlines():
        entry = _entry(line)
        drop = entry is not None and (
            (entry[1] == "FK CONSTRAINT" and not foreign_keys)
            or (entry[1] in _ATTACH and any(_wanted(entry[1], entry[2], t, True) for t in orphans))
        )
        lines.append(";" + line if drop else line)
    return "\n".join(lines) + "\n"


def table_data_tags(listing: str) -> list[tuple[int, str]]:
    """(dump ID, 'schema name') of each TABLE DATA entry of a listing."""
    entries = (_entry(line) for line in listing.splitlines())
    return [(e[0], e[2]) for e in entries if e is not None and e[1] == "TABLE DATA"]


def data_files(files: Iterable[DumpFile], data_ids: Iterable[int]) -> list[DumpFile]:
    """The files holding these TABLE DATA entries (`<id>.dat` and its compressed forms)."""
    wanted = {str(i) for i in data_ids}
    return [f for f in files if f.name.split(".", 1)[0] in wanted]
