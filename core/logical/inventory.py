"""What a logical backup reads from the server before pg_dump runs: the database, its
tables (row estimates, sizes, indexes, owned sequences), and which tables each `--table`
pattern names, so that a bad name is refused before anything is stored.

Patterns follow psql's rules, as pg_dump applies them: `schema.table`, `*` and `?`
wildcards, unquoted letters folded to lower case, double quotes keeping case and
characters literally; a pattern without a schema names tables on the search path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import InputError
from core.logical.manifest import TableEntry, with_partitions
from core.postgres.connection import ConnectionParams, Session
from core.postgres.relation_sizes import EXCLUSIVELY_LOCKED, query_sizes, size_of

_RELATIONS = f"""{EXCLUSIVELY_LOCKED}
select n.nspname, c.relname, c.relkind, c.reltuples::bigint,
       case when c.relkind in ('r', 'p', 'm') then {size_of("pg_table_size")} else 0 end,
       pg_table_is_visible(c.oid),
       array(select i.relname from pg_index x join pg_class i on i.oid = x.indexrelid
             where x.indrelid = c.oid order by 1),
       array(select array[sn.nspname::text, s.relname::text]
             from pg_depend d join pg_class s on s.oid = d.objid
             join pg_namespace sn on sn.oid = s.relnamespace
             where d.classid = 'pg_class'::regclass and d.refclassid = 'pg_class'::regclass
               and d.refobjid = c.oid and s.relkind = 'S' and d.deptype in ('a', 'i')
             order by 1),
       (select array[pn.nspname::text, p.relname::text]
        from pg_inherits i join pg_class p on p.oid = i.inhparent
        join pg_namespace pn on pn.oid = p.relnamespace
        where i.inhrelid = c.oid and c.relispartition limit 1)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
  and n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname !~ '^pg_toast' and n.nspname !~ '^pg_temp'
order by 1, 2
"""  # noqa: S608 - fixed fragments, no input
#: the sequences the column defaults of some tables use (nextval), owned by them or not
_DEFAULT_SEQUENCES = """
select distinct sn.nspname, s.relname
from pg_attrdef ad
join pg_depend d on d.classid = 'pg_attrdef'::regclass and d.objid = ad.oid
     and d.refclassid = 'pg_class'::regclass
join pg_class s on s.oid = d.refobjid and s.relkind = 'S'
join pg_namespace sn on sn.oid = s.relnamespace
where ad.adrelid = any(%s::regclass[])
order by 1, 2
"""
TABLE_KINDS = ("r", "p")
_KINDS = {
    "r": "table",
    "p": "table",
    "v": "view",
    "m": "materialized view",
    "S": "sequence",
    "f": "foreign table",
}


@dataclass(frozen=True)
class Relation:
    entry: TableEntry
    kind: str
    visible: bool


@dataclass(frozen=True)
class DatabaseFacts:
    name: str
    encoding: str
    size: int
    server_version: int
    server_version_text: str


def list_databases(params: ConnectionParams) -> list[DatabaseFacts]:
    """Every database one can connect to, templates aside, by name."""
    with Session(params, application_name="pgvault logical") as session:
        rows = session.query(
            "select datname, pg_encoding_to_char(encoding), pg_database_size(oid) "
            "from pg_database where datallowconn and not datistemplate order by 1"
        )
        version = int(session.one("show server_version_num"))
        text = str(session.one("select version()"))
    return [DatabaseFacts(name, enc, int(size), version, text) for name, enc, size in rows]


def database_facts(params: ConnectionParams, database: str) -> DatabaseFacts:
    """The database as the server knows it; InputError naming the others when absent."""
    found = list_databases(params)
    for facts in found:
        if facts.name == database:
            return facts
    held = ", ".join(f.name for f in found)
    raise InputError(f"database {database!r} does not exist on the server (it has: {held})")


def relations(params: ConnectionParams, database: str) -> list[Relation]:
    with Session(params, application_name="pgvault logical", dbname=database) as session:
        rows = query_sizes(session, _RELATIONS, what="listing the tables")
    found = []
    for schema, name, kind, tuples, size, visible, indexes, sequences, parent in rows:
        entry = TableEntry(
            schema=schema,
            name=name,
            rows_estimate=int(tuples) if tuples is not None and tuples >= 0 else None,
            size=int(size or 0),
            indexes=tuple(indexes or ()),
            sequences=tuple((s[0], s[1]) for s in sequences or ()),
            partition_of=(parent[0], parent[1]) if parent else None,
        )
        found.append(Relation(entry, kind, bool(visible)))
    return found


def _split(pattern: str) -> list[tuple[str, str]]:
    """psql's pattern as its dotted parts, each (literal: quotes removed, unquoted letters
    folded; regex: wildcards translated, quoted characters escaped)."""
    parts: list[tuple[str, str]] = [("", "")]
    quoted = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        literal, regex = parts[-1]
        if c == '"':
            if quoted and pattern[i + 1 : i + 2] == '"':
                parts[-1] = (literal + '"', regex + '"')
                i += 1
            else:
                quoted = not quoted
        elif quoted:
            parts[-1] = (literal + c, regex + re.escape(c))
        elif c == ".":
            parts.append(("", ""))
        else:
            folded = {"*": ".*", "?": ".", "$": r"\$"}.get(c, c.lower())
            parts[-1] = (literal + c.lower(), regex + folded)
        i += 1
    return parts


def pattern_parts(pattern: str) -> tuple[str | None, str]:
    """psql's pattern as (schema regex or None, name regex), both anchored."""
    # database.schema.table: the database part is the one connected to (check_database)
    parts = [regex for _, regex in _split(pattern)][-2:]
    if len(parts) == 1:
        return None, parts[0]
    return parts[0], parts[1]


def check_database(pattern: str, database: str) -> None:
    """InputError for a pattern of more than three parts, or whose database part (as in
    database.schema.table) names another database than the one it selects tables of."""
    parts = _split(pattern)
    if len(parts) > 3:  # noqa: PLR2004 - database.schema.table
        raise InputError(f"invalid table pattern {pattern!r}: too many dotted names")
    if len(parts) == 3 and parts[0][0] != database:  # noqa: PLR2004
        raise InputError(
            f"table pattern {pattern!r} names database {parts[0][0]!r}, not {database!r}: "
            "a pattern selects tables of the database restored or backed up"
        )


def _matches(pattern: str, rel: Relation) -> bool:
    schema_re, name_re = pattern_parts(pattern)
    try:
        if schema_re is None:
            return rel.visible and re.fullmatch(name_re, rel.entry.name) is not None
        return (
            re.fullmatch(schema_re, rel.entry.schema) is not None
            and re.fullmatch(name_re, rel.entry.name) is not None
        )
    except re.error as exc:
        raise InputError(f"invalid table pattern {pattern!r}: {exc}") from None


def select_tables(
    found: list[Relation], patterns: tuple[str, ...], database: str
) -> tuple[TableEntry, ...]:
    """Every table, or those the patterns name with the partitions of a partitioned one;
    InputError for a pattern naming nothing."""
    if not patterns:
        return tuple(r.entry for r in found if r.kind in TABLE_KINDS)
    chosen: dict[str, TableEntry] = {}
    for pattern in patterns:
        check_database(pattern, database)
        hits = [r for r in found if _matches(pattern, r)]
        if not hits:
            raise InputError(
                f"no table matches {pattern!r} in database {database!r} "
                "(write SCHEMA.TABLE; patterns follow psql's rules)"
            )
        tables = [r for r in hits if r.kind in TABLE_KINDS]
        if not tables:  # the backup would hold no table, and no restore could use it
            named = ", ".join(f"{_KINDS[r.kind]} {r.entry.qualified}" for r in hits[:5])
            raise InputError(
                f"--table {pattern!r} names no table in database {database!r}, only: {named} "
                "(a logical backup's --table takes tables; back up the database for the rest)"
            )
        chosen.update({r.entry.qualified: r.entry for r in tables})
    every = tuple(r.entry for r in found if r.kind in TABLE_KINDS)
    return with_partitions(tuple(chosen.values()), every)


def borrowed_sequences(
    params: ConnectionParams, database: str, tables: tuple[TableEntry, ...]
) -> tuple[tuple[str, str], ...]:
    """(schema, name) of the sequences the tables' column defaults use that none of them
    owns: a partition's default uses its parent's. pg_dump -t dumps a table's owned
    sequences only, and a restore fails on a default naming a sequence it lacks."""
    owned = {s for t in tables for s in t.sequences}
    names = [t.pattern for t in tables]
    with Session(params, application_name="pgvault logical", dbname=database) as session:
        rows = session.query(_DEFAULT_SEQUENCES, (names,), what="listing the sequences used")
    return tuple((str(a), str(b)) for a, b in rows if (a, b) not in owned)
