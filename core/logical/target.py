"""The server a logical restore writes into: what exists there, and what the restore makes.

A restore never overwrites silently: an existing database (a whole-database restore) or an
existing table (a table restore) is refused, naming it, unless `--clean` was given.
"""

from __future__ import annotations

import contextlib
import logging

from core.errors import InputError, PgvaultError
from core.logical.manifest import TableEntry
from core.postgres.connection import ConnectionParams, Session

log = logging.getLogger("pgvault.logical")
APP = "pgvault logical restore"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def server_version(params: ConnectionParams) -> int:
    with Session(params, application_name=APP) as session:
        return int(session.one("show server_version_num"))


def database_exists(params: ConnectionParams, name: str) -> bool:
    with Session(params, application_name=APP) as session:
        return bool(session.query("select 1 from pg_database where datname = %s", (name,)))


def check_new_database(params: ConnectionParams, name: str, clean: bool) -> bool:
    """Whether the database must be created; InputError when it exists and no --clean."""
    if not database_exists(params, name):
        return True
    if not clean:
        raise InputError(
            f"database {name!r} already exists on the target server: restore under another "
            "name with --new-db-name, or pass --clean to replace it"
        )
    return False


def check_tables(
    params: ConnectionParams, database: str, tables: tuple[TableEntry, ...], clean: bool
) -> tuple[TableEntry, ...]:
    """The tables that do not exist yet; InputError naming those that do, without --clean."""
    if not database_exists(params, database):
        raise InputError(
            f"database {database!r} does not exist on the target server: a table restore "
            "goes into an existing database (--into-db NAME)"
        )
    with Session(params, application_name=APP, dbname=database) as session:
        existing = [
            t
            for t in tables
            if session.one("select to_regclass(%s)", (f"{ident(t.schema)}.{ident(t.name)}",))
        ]
    if existing and not clean:
        names = ", ".join(t.qualified for t in existing)
        raise InputError(
            f"table(s) {names} already exist in database {database!r}: pass --clean to "
            "replace them, or restore into another database with --into-db"
        )
    return tuple(t for t in tables if t not in existing)


def create_database(params: ConnectionParams, name: str, encoding: str) -> None:
    with Session(params, application_name=APP) as session:
        session.query(
            f"create database {ident(name)} template template0 encoding {literal(encoding)}",
            what=f"creating database {name}",
        )


def drop_database(params: ConnectionParams, name: str) -> None:
    with Session(params, application_name=APP) as session:
        session.query(f"drop database if exists {ident(name)}", what=f"dropping database {name}")


def replace_database(params: ConnectionParams, loaded: str, name: str) -> None:
    """--clean: the restored database takes the existing one's name (its sessions ended)."""
    with Session(params, application_name=APP) as session:
        session.query(f"drop database {ident(name)} with (force)", what=f"dropping database {name}")
        session.query(
            f"alter database {ident(loaded)} rename to {ident(name)}",
            what=f"renaming database {loaded} to {name}",
        )


def create_schemas(params: ConnectionParams, database: str, schemas: set[str]) -> None:
    with Session(params, application_name=APP, dbname=database) as session:
        for schema in sorted(schemas):
            session.query(f"create schema if not exists {ident(schema)}", what="create schema")


def undo(
    params: ConnectionParams, database: str, created_db: bool, tables: tuple[TableEntry, ...]
) -> None:
    """Remove what a failed restore made: the database it created, or the new tables."""
    with contextlib.suppress(PgvaultError):
        if created_db:
            with Session(params, application_name=APP) as session:
                session.query(f"drop database if exists {ident(database)}", what="drop database")
        elif tables:
            with Session(params, application_name=APP, dbname=database) as session:
                for t in tables:
                    session.query(
                        f"drop table if exists {ident(t.schema)}.{ident(t.name)} cascade",
                        what="drop table",
                    )
        return
    log.warning("could not remove what the failed restore made in %s", database)
