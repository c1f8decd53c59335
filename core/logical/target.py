"""The server a logical restore writes into: what exists there, and what the restore makes.

A restore never overwrites silently: an existing database (a whole-database restore) or an
existing table (a table restore) is refused, naming it, unless `--clean` was given.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from typing import Any

from core.catalog.owner import judge, this_process
from core.errors import InputError, OperationFailed, PgvaultError
from core.logical.manifest import TableEntry
from core.postgres.connection import ConnectionParams, Session

log = logging.getLogger("pgvault.logical")
APP = "pgvault logical restore"
#: a database being restored is loaded under this prefix and renamed once complete
TEMPORARY_PREFIX = "pgvault_restore_"
#: the database --clean replaces, set aside until the restored one has its name
REPLACED_PREFIX = "pgvault_replaced_"
#: its comment names the restoring process, so that a later restore drops a killed one's
OWNER_COMMENT = "pgvault logical restore in progress, owner: "
#: NAMEDATALEN - 1: PostgreSQL silently truncates a longer name
MAX_NAME_BYTES = 63


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


def connected_database(params: ConnectionParams) -> str:
    """The database -d names, by libpq's rules (a name, a conninfo, a URI or the default)."""
    with Session(params, application_name=APP) as session:
        return str(session.one("select current_database()"))


def check_new_database(params: ConnectionParams, name: str, clean: bool) -> bool:
    """Whether the database exists; InputError when it exists and cannot be replaced."""
    with Session(params, application_name=APP) as session:
        found = session.query(
            "select datistemplate, current_database() from pg_database where datname = %s",
            (name,),
        )
    if not found:
        return False
    if not clean:
        raise InputError(
            f"database {name!r} already exists on the target server: restore under another "
            "name with --new-db-name, or pass --clean to replace it"
        )
    template, connected = found[0]
    why = ""
    if name == connected:
        why = "this restore connects to it (-d): connect with -d to another database"
    elif template:
        why = "it is a template database, which PostgreSQL does not drop"
    if why:
        raise InputError(f"--clean cannot replace database {name!r}: {why}")
    return True


def temporary_name(backup_id: str) -> str:
    """Where a database is loaded before it takes its name: never a half-restored database
    under the asked name. The PID keeps two restores of one backup apart."""
    return f"{TEMPORARY_PREFIX}{backup_id.lower()}_{os.getpid()}"


def _owner(comment: str | None) -> dict[str, Any] | None:
    if not comment or not comment.startswith(OWNER_COMMENT):
        return None
    with contextlib.suppress(ValueError):
        recorded = json.loads(comment[len(OWNER_COMMENT) :])
        return recorded if isinstance(recorded, dict) else None
    return None


def drop_abandoned(params: ConnectionParams) -> list[str]:
    """Drop the temporary databases of killed restores (their owner provably gone, judged
    as a lease is); those of running restores, or of another machine, stay."""
    dropped = []
    with Session(params, application_name=APP) as session:
        rows = session.query(
            "select datname, shobj_description(oid, 'pg_database') from pg_database "
            "where starts_with(datname, %s)",
            (TEMPORARY_PREFIX,),
        )
        for name, comment in rows:
            recorded = _owner(comment)
            if recorded is None or not judge(recorded, None).abandoned:
                continue
            session.query(
                f"drop database if exists {ident(name)} with (force)",
                what=f"dropping database {name} of a killed restore",
            )
            log.warning("dropped database %s, left by a killed logical restore", name)
            dropped.append(name)
    return dropped


def check_tables(
    params: ConnectionParams,
    database: str,
    tables: tuple[TableEntry, ...],
    clean: bool,
    foreign_keys: bool = True,
) -> tuple[TableEntry, ...]:
    """The tables that do not exist yet; InputError naming those that do, without --clean,
    and with --clean those another table's foreign key holds."""
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
        held = []
        if clean:
            held = _referenced(session, existing, tables if foreign_keys else ())
            held += _viewed(session, existing)
            held += _attached(session, existing, tables)
    if existing and not clean:
        names = ", ".join(t.qualified for t in existing)
        raise InputError(
            f"table(s) {names} already exist in database {database!r}: pass --clean to "
            "replace them, or restore into another database with --into-db"
        )
    if held:
        raise InputError(
            f"--clean cannot replace {'; '.join(held)}: pg_restore cannot drop a table another "
            "table's foreign key references or a view reads, nor a partition alone; restore "
            "the referencing table too (--table), or drop that constraint or view first"
        )
    return tuple(t for t in tables if t not in existing)


def _referenced(
    session: Session, existing: list[TableEntry], restored: tuple[TableEntry, ...]
) -> list[str]:
    """'table X (referenced by foreign key C of table Y)' for each foreign key of a table
    that is not restored with its own foreign keys (--clean drops and re-creates those)."""
    others = {(t.schema, t.name) for t in restored}
    held = []
    for t in existing:
        rows = session.query(
            "select c.conname, n.nspname, r.relname from pg_constraint c "
            "join pg_class r on r.oid = c.conrelid join pg_namespace n on n.oid = r.relnamespace "
            "where c.contype = 'f' and c.confrelid = %s::regclass order by 2, 3, 1",
            (f"{ident(t.schema)}.{ident(t.name)}",),
        )
        held += [
            f"table {t.qualified} (referenced by foreign key {name} of table {schema}.{rel})"
            for name, schema, rel in rows
            if (schema, rel) not in others
        ]
    return held


def _attached(
    session: Session, existing: list[TableEntry], restored: tuple[TableEntry, ...]
) -> list[str]:
    """'partition X (of partitioned table Y, which is not restored)': DROP TABLE of a
    partition keeps its parent, whose keys it inherits, and pg_restore's --clean first
    drops those keys, which PostgreSQL refuses."""
    names = {(t.schema, t.name) for t in restored}
    held = []
    for t in existing:
        rows = session.query(
            "select n.nspname, p.relname from pg_inherits i join pg_class c on c.oid = "
            "i.inhrelid join pg_class p on p.oid = i.inhparent join pg_namespace n on "
            "n.oid = p.relnamespace where c.oid = %s::regclass and c.relispartition",
            (f"{ident(t.schema)}.{ident(t.name)}",),
        )
        held += [
            f"partition {t.qualified} (of partitioned table {schema}.{parent}, which is "
            "not restored: restore that table, its partitions come with it, or detach "
            "the partition first)"
            for schema, parent in rows
            if (schema, parent) not in names
        ]
    return held


def _viewed(session: Session, existing: list[TableEntry]) -> list[str]:
    """'table X (read by view V)' for each view of a table: a table restore brings no view,
    and DROP TABLE without CASCADE fails on one."""
    held = []
    for t in existing:
        rows = session.query(
            "select distinct n.nspname, v.relname from pg_depend d "
            "join pg_rewrite w on d.classid = 'pg_rewrite'::regclass and w.oid = d.objid "
            "join pg_class v on v.oid = w.ev_class join pg_namespace n on n.oid = v.relnamespace "
            "where v.oid <> %s::regclass and (d.refobjid = %s::regclass or d.refobjid in "
            "(select oid from pg_constraint where conrelid = %s::regclass)) order by 1, 2",
            (f"{ident(t.schema)}.{ident(t.name)}",) * 3,
        )
        held += [f"table {t.qualified} (read by view {schema}.{view})" for schema, view in rows]
    return held


def create_database(params: ConnectionParams, name: str, encoding: str) -> None:
    """A new database from template0; a temporary one's comment names this process."""
    with Session(params, application_name=APP) as session:
        session.query(
            f"create database {ident(name)} template template0 encoding {literal(encoding)}",
            what=f"creating database {name}",
        )
        if name.startswith(TEMPORARY_PREFIX):
            comment = OWNER_COMMENT + json.dumps(this_process())
            session.query(
                f"comment on database {ident(name)} is {literal(comment)}",
                what=f"marking database {name} as this restore's",
            )


def take_name(params: ConnectionParams, loaded: str, name: str, replace: bool) -> None:
    """The restored database takes its name. With `replace` (--clean) the existing one is
    first set aside (closed to new sessions, its sessions ended, renamed) and dropped only
    once the restored one has its name: a failure on the way puts it back as it was."""
    with Session(params, application_name=APP) as session:
        aside = _set_aside(session, params, name, loaded) if replace else None
        try:
            session.query(
                f"alter database {ident(loaded)} rename to {ident(name)}",
                what=f"renaming database {loaded} to {name}",
            )
        except PgvaultError as exc:
            copy = "dropped" if undo(params, loaded, True, ()) else f"left as {loaded}: drop it"
            if aside is None:
                raise OperationFailed(f"{exc} (the restored copy is {copy})") from None
            back = _put_back(session, aside, name)
            raise OperationFailed(f"{exc} ({back}; the restored copy is {copy})") from None
        # after the rename: a restore killed before it leaves a database still marked
        session.query(f"comment on database {ident(name)} is null", what="comment")
        if aside is not None:
            try:
                session.query(f"drop database {ident(aside)} with (force)", what="drop")
            except PgvaultError as exc:
                log.warning("the replaced database is left as %s (drop it): %s", aside, exc)


def _set_aside(session: Session, params: ConnectionParams, name: str, loaded: str) -> str:
    """The database --clean replaces, renamed out of the way (new sessions refused, its
    own ended); its new name. A failure leaves it as it was and drops the restored copy."""
    aside = REPLACED_PREFIX + loaded.removeprefix(TEMPORARY_PREFIX)
    try:
        session.query(f"alter database {ident(name)} allow_connections false", what="close")
        _rename_alone(session, name, aside)
    except BaseException:
        with contextlib.suppress(PgvaultError):
            session.query(f"alter database {ident(name)} allow_connections true", what="open")
        undo(params, loaded, True, ())
        raise
    return aside


def _rename_alone(session: Session, name: str, new: str) -> None:
    """Rename a database once its sessions are ended (one may still be ending: 3 tries)."""
    for attempt in range(3):
        session.query(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where datname = %s and pid <> pg_backend_pid()",
            (name,),
            what=f"ending the sessions of database {name}",
        )
        try:
            session.query(
                f"alter database {ident(name)} rename to {ident(new)}",
                what=f"setting database {name} aside",
            )
            return
        except PgvaultError:
            if attempt == 2:  # noqa: PLR2004 - the last of 3
                raise
            time.sleep(1)


def _put_back(session: Session, aside: str, name: str) -> str:
    """The set-aside database under its name again, open to sessions; what it says."""
    try:
        session.query(f"alter database {ident(aside)} rename to {ident(name)}", what="rename")
        session.query(f"alter database {ident(name)} allow_connections true", what="open")
    except PgvaultError as exc:
        return (
            f"the existing database {name} is left as {aside}, closed to new sessions "
            f"({exc}): rename it back and ALTER DATABASE ... ALLOW_CONNECTIONS true"
        )
    return f"the existing database {name} is as it was"


def create_schemas(params: ConnectionParams, database: str, schemas: set[str]) -> None:
    with Session(params, application_name=APP, dbname=database) as session:
        for schema in sorted(schemas):
            session.query(f"create schema if not exists {ident(schema)}", what="create schema")


def existing_sequences(
    params: ConnectionParams, database: str, tags: tuple[str, ...]
) -> tuple[str, ...]:
    """Of these 'schema name' tags (pg_restore -l's), those naming a sequence in the
    database (a space in a schema's name: each way of splitting is tried)."""
    if not tags:
        return ()
    found = []
    with Session(params, application_name=APP, dbname=database) as session:
        for tag in tags:
            splits = [(tag[:i], tag[i + 1 :]) for i, c in enumerate(tag) if c == " "]
            if any(
                session.query(
                    "select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                    "where n.nspname = %s and c.relname = %s and c.relkind = 'S'",
                    split,
                )
                for split in splits
            ):
                found.append(tag)
    return tuple(found)


def partitioned_drops(tables: tuple[TableEntry, ...]) -> list[str]:
    """--clean of a partitioned table restored with its partitions: DROP it (its partitions
    go with it) before pg_restore's script, whose --clean would first drop each partition's
    inherited constraints, which PostgreSQL refuses. In the restore's one transaction.
    check_tables has refused what holds it."""
    names = {(t.schema, t.name) for t in tables}
    parents = {t.partition_of for t in tables if t.partition_of in names}
    roots = [t for t in tables if (t.schema, t.name) in parents and t.partition_of not in names]
    return [f"drop table if exists {ident(t.schema)}.{ident(t.name)}" for t in roots]


def undo(
    params: ConnectionParams, database: str, created_db: bool, tables: tuple[TableEntry, ...]
) -> bool:
    """Remove what a failed restore made: the database it created, or the new tables;
    whether it is gone."""
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
        return True
    log.warning("could not remove what the failed restore made in %s", database)
    return False
