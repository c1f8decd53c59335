"""What the cluster holds when a backup is taken: databases and tables with their sizes.

Recorded in pgvault.json so that a catalog can say what a backup contains without restoring
it. Failing to read one database (no CONNECT privilege, dropped meanwhile) is a warning,
never a failed backup.
"""

from __future__ import annotations

import logging

from core.catalog.manifest import DatabaseRecord, TableRecord
from core.errors import PostgresError
from core.postgres.connection import ConnectionParams, Session
from core.postgres.relation_sizes import EXCLUSIVELY_LOCKED, query_sizes, size_of

log = logging.getLogger("pgvault.postgres")

_KINDS = {"r": "table", "p": "partitioned table", "m": "materialized view"}
_PERSISTENCE = {"p": "permanent", "u": "unlogged"}

_TABLES = f"""{EXCLUSIVELY_LOCKED}
SELECT n.nspname, c.relname, c.relkind::text, c.relpersistence::text,
       {size_of("pg_total_relation_size")}, t.spcname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace
WHERE c.relkind IN ('r', 'p', 'm') AND c.relpersistence IN ('p', 'u')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%'
ORDER BY 1, 2
"""  # noqa: S608 - fixed fragments, no input


def inventory(
    session: Session, params: ConnectionParams, application_name: str
) -> tuple[tuple[DatabaseRecord, ...], tuple[TableRecord, ...]]:
    """Every connectable database with its size, and every user table in each of them."""
    databases = []
    rows = session.query(
        "SELECT datname, oid, CASE WHEN has_database_privilege(oid, 'CONNECT')"
        " THEN pg_database_size(oid) END FROM pg_database"
        " WHERE datallowconn AND NOT datistemplate ORDER BY datname",
        what="listing databases",
    )
    tables: list[TableRecord] = []
    for name, oid, size in rows:
        databases.append(DatabaseRecord(name=name, oid=int(oid), size=size))
        try:
            with Session(params, application_name, dbname=name) as db:
                for schema, rel, kind, persistence, rel_size, tablespace in query_sizes(
                    db, _TABLES, what=f"listing the tables of {name}"
                ):
                    tables.append(
                        TableRecord(
                            database=name,
                            schema=schema,
                            name=rel,
                            kind=_KINDS.get(kind, kind),
                            persistence=_PERSISTENCE.get(persistence, persistence),
                            size=rel_size,
                            tablespace=tablespace,
                        )
                    )
        except PostgresError as exc:
            log.warning("cannot list the tables of database %s: %s", name, exc)
    return tuple(databases), tuple(tables)
