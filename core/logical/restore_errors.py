"""What a failed logical restore says: pg_restore's (or psql's) cause, the way out when
it is known, and what the target holds now."""

from __future__ import annotations

import re

from core.errors import OperationFailed
from core.logical.manifest import TableEntry


def left_state(
    exc: OperationFailed,
    database: str | None,
    undone: bool,
    clean: bool,
    created: tuple[TableEntry, ...],
) -> OperationFailed:
    """The failure with what the target holds: the partly loaded `database` (a database
    restore) or the `created` tables (a table restore) removed or not. A --clean of tables
    was rolled back, which its message says already."""
    if clean:
        return exc
    if database is not None:
        state = (
            f"the partly loaded database {database} is dropped; the target is as it was"
            if undone
            else f"the partly loaded database {database} is left: drop it"
        )
    else:
        names = ", ".join(t.qualified for t in created) or "none"
        state = (
            f"the tables it created are dropped ({names}); the others are as they were"
            if undone
            else f"table(s) {names} may be left partly loaded: drop them"
        )
    return OperationFailed(f"{exc} ({state})")


def rolled_back(exc: OperationFailed, piped: bool) -> OperationFailed:
    """A --clean of tables failed in its one transaction: psql's line without its prefix,
    and what the target holds (nothing changed: the transaction was rolled back)."""
    if not piped:
        return exc
    text = re.sub(r"psql:<stdin>:\d+: ", "", str(exc))
    return OperationFailed(
        f"{text} (rolled back: the tables --clean would replace are as they were)"
    )


def foreign_key_hint(exc: OperationFailed, foreign_keys: bool) -> OperationFailed:
    """pg_restore's failure, with the way out when a foreign key names a missing table (a
    --table backup or restore without the table it references)."""
    # the first line of an ADD CONSTRAINT ... FOREIGN KEY ends at the table's name
    if foreign_keys and re.search(r"does not exist; Command was: ALTER TABLE ONLY \S+$", str(exc)):
        return OperationFailed(
            f"{exc} (a foreign key references a table this restore does not hold: restore "
            "that table too, or leave the foreign keys out with --no-foreign-keys)"
        )
    return exc


def missing_relation_hint(exc: OperationFailed) -> OperationFailed:
    """A CREATE TABLE naming a relation the backup does not hold: the sequence a column
    default uses (a --table backup of a partition taken before pgvault added the sequence
    its partitioned table owns), or a table it inherits from."""
    found = re.search(r'relation "([^"]+)" does not exist; Command was: CREATE TABLE', str(exc))
    if found is None:
        return exc
    return OperationFailed(
        f"{exc} (the backup does not hold {found[1]}: a sequence a column default of the "
        "table uses, or a table it inherits from; restore the table with --table into a "
        f"database that has {found[1]}, or back up again: a --table backup now holds the "
        "sequences its tables' defaults use)"
    )
