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
from dataclasses import dataclass, replace

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
#: of a borrowed sequence (one no restored table owns): not its OWNED BY, whose table is not
_BORROWED = ("SEQUENCE", "SEQUENCE SET")


@dataclass(frozen=True)
class Selection:
    listing: str  # the -L file: every line, the unwanted ones commented out
    data_ids: tuple[int, ...]  # TABLE DATA entries kept (their files must be present)
    entries: int
    #: 'schema name' tags (as pg_restore -l prints them) of the sequences a kept table's
    #: column default uses that no restored table owns (a partition's parent's): kept with
    #: their values, without OWNED BY
    borrowed: tuple[str, ...] = ()


_DEPENDS = "; depends on:"


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


def depends(listing: str) -> dict[int, tuple[int, ...]]:
    """The dump IDs each entry depends on, from the '; depends on:' lines `pg_restore -l -v`
    writes under it."""
    found: dict[int, tuple[int, ...]] = {}
    last: int | None = None
    for line in listing.splitlines():
        entry = _entry(line)
        if entry is not None:
            last = entry[0]
        elif last is not None and line.replace("\t", " ").startswith(_DEPENDS):
            ids = line.replace("\t", " ")[len(_DEPENDS) :].split()
            found[last] = tuple(int(i) for i in ids if i.isdigit())
    return found


def _borrowed(listing: str, kept_ids: set[int]) -> set[str]:
    """The 'schema name' tags of the sequences a kept TABLE or DEFAULT entry depends on that
    are not kept: a partition's column default uses its parent's (PostgreSQL 15 to 18)."""
    deps = depends(listing)
    entries = [e for e in (_entry(line) for line in listing.splitlines()) if e is not None]
    sequences = {e[0]: e[2] for e in entries if e[1] == "SEQUENCE"}
    used = {
        d
        for e in entries
        if e[0] in kept_ids and e[1] in ("TABLE", "DEFAULT")
        for d in deps.get(e[0], ())
    }
    return {sequences[d] for d in used if d in sequences and d not in kept_ids}


def select_entries(
    listing: str,
    tables: Iterable[TableEntry],
    foreign_keys: bool = True,
    keep_out: Iterable[str] = (),
) -> Selection:
    """The entries of the tables (see the module); with `pg_restore -l -v`'s listing also
    the sequences their defaults use that no chosen table owns (by 'schema name' tag), but
    those in `keep_out` (which exist on the target)."""
    chosen = tuple(tables)
    first, kept = _select(listing, chosen, foreign_keys, set())
    borrowed = _borrowed(listing, kept) - set(keep_out)
    if not borrowed:
        return first
    selection = _select(listing, chosen, foreign_keys, borrowed)[0]
    return Selection(
        selection.listing, selection.data_ids, selection.entries, tuple(sorted(borrowed))
    )


def _select(
    listing: str, chosen: tuple[TableEntry, ...], foreign_keys: bool, borrowed: set[str]
) -> tuple[Selection, set[int]]:
    names = {(t.schema, t.name) for t in chosen}
    # a partition restored without its partitioned table stays a table of its own
    attachable = tuple(t for t in chosen if t.partition_of in names)
    lines, data_ids, kept = [], [], set()
    for line in listing.splitlines():
        entry = _entry(line)
        if entry is None:
            lines.append(line if line.startswith(";") or not line.strip() else ";" + line)
            continue
        dump_id, desc, name = entry
        among = attachable if desc in _ATTACH else chosen
        if any(_wanted(desc, name, t, foreign_keys) for t in among) or (
            desc in _BORROWED and name in borrowed
        ):
            lines.append(line)
            kept.add(dump_id)
            if desc == "TABLE DATA":
                data_ids.append(dump_id)
        else:
            lines.append(";" + line)
    return Selection("\n".join(lines) + "\n", tuple(data_ids), len(kept)), kept


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


#: the partitioned table of a partition whose dump does not hold it (a --table backup of
#: the partition alone), as toc_partitions derives it
ABSENT_PARENT = ("", "")


def toc_partitions(listing: str, tables: tuple[TableEntry, ...]) -> tuple[TableEntry, ...] | None:
    """The tables with the partitioned table of each partition, from the TABLE ATTACH
    entries of `pg_restore -l -v`'s listing (each depends on its partition's TABLE and on its
    parent's, when the dump holds it); None when the manifest records them already (or the
    dump holds no partition). A logical.json written before pgvault recorded partitions."""
    if any(t.partition_of is not None for t in tables):
        return None
    deps = depends(listing)
    entries = [e for e in (_entry(line) for line in listing.splitlines()) if e is not None]
    created = {e[0]: e[2] for e in entries if e[1] == "TABLE"}
    parents: dict[str, str | None] = {}
    for dump_id, desc, tag in entries:
        if desc == "TABLE ATTACH":
            others = [created[d] for d in deps.get(dump_id, ()) if created.get(d, tag) != tag]
            parents[tag] = others[0] if others else None
    if not parents:
        return None
    by_tag = {f"{t.schema} {t.name}": t for t in tables}
    derived = []
    for t in tables:
        tag = f"{t.schema} {t.name}"
        if tag in parents:
            parent = by_tag.get(parents[tag] or "")
            where = (parent.schema, parent.name) if parent is not None else ABSENT_PARENT
            t = replace(t, partition_of=where)
        derived.append(t)
    return tuple(derived)


def table_data_tags(listing: str) -> list[tuple[int, str]]:
    """(dump ID, 'schema name') of each TABLE DATA entry of a listing."""
    entries = (_entry(line) for line in listing.splitlines())
    return [(e[0], e[2]) for e in entries if e is not None and e[1] == "TABLE DATA"]


def data_files(files: Iterable[DumpFile], data_ids: Iterable[int]) -> list[DumpFile]:
    """The files holding these TABLE DATA entries (`<id>.dat` and its compressed forms)."""
    wanted = {str(i) for i in data_ids}
    return [f for f in files if f.name.split(".", 1)[0] in wanted]
