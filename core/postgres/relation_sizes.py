"""Relation sizes for an inventory without waiting for anyone's table lock.

pg_total_relation_size() and pg_table_size() open the relation, its TOAST table and its
indexes with ACCESS SHARE, which waits behind ACCESS EXCLUSIVE: an ALTER TABLE, VACUUM FULL
or REINDEX running for an hour would hold a backup at "recording databases and tables" for
that hour (pg_basebackup and barman take no table lock at all). A relation with such a lock
granted or requested gets the size pg_class last recorded instead (relpages, as of its last
VACUUM or ANALYZE); lock_timeout bounds the moment between looking and opening.
"""

from __future__ import annotations

from typing import Any

from core.errors import PostgresError
from core.postgres.connection import Session

#: how long a size function may wait for a lock taken after pg_locks was read
LOCK_TIMEOUT = "5s"

#: relations (tables, their TOAST tables, through their indexes) someone locks exclusively
EXCLUSIVELY_LOCKED = """
WITH locked AS MATERIALIZED (
    SELECT relation FROM pg_locks
    WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock'
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
), blocked AS MATERIALIZED (
    SELECT relation AS oid FROM locked
    UNION SELECT x.indrelid FROM pg_index x JOIN locked ON locked.relation = x.indexrelid
)
"""


def size_of(function: str) -> str:
    """`function(c.oid)`, or pg_class's estimate while the relation is locked exclusively
    (in a query that starts with EXCLUSIVELY_LOCKED; `function` is a literal name)."""
    locked = "c.oid IN (SELECT oid FROM blocked) OR c.reltoastrelid IN (SELECT oid FROM blocked)"
    estimate = "c.relpages::bigint * current_setting('block_size')::bigint"
    return f"CASE WHEN {locked} THEN {estimate} ELSE {function}(c.oid) END"


def query_sizes(session: Session, sql: str, what: str) -> list[tuple[Any, ...]]:
    """Run an inventory query built with size_of, never waiting long for a lock: a lock
    taken between reading pg_locks and opening the relation is seen by a second look."""
    session.query(f"SET lock_timeout = '{LOCK_TIMEOUT}'", what="setting lock_timeout")
    try:
        return session.query(sql, what=what)
    except PostgresError:
        # Looked again whatever the error: a lock timeout's message follows the server's
        # lc_messages, and any other failure fails again the same way.
        return session.query(sql, what=what)
