"""barman-cloud's -h/-p/-U/-d semantics, and secrets kept out of messages."""

from __future__ import annotations

import psycopg2.extensions

from core.postgres.connection import ConnectionParams
from core.secrets import redact


def _parsed(params: ConnectionParams, **kwargs: str) -> dict[str, str]:
    parsed: dict[str, str] = psycopg2.extensions.parse_dsn(params.dsn(**kwargs))
    return parsed


def test_dbname_is_a_database_name_by_default() -> None:
    params = ConnectionParams(host="/run/pg", port="5433", user="backup")
    assert _parsed(params, application_name="pgvault") == {
        "host": "/run/pg",
        "port": "5433",
        "user": "backup",
        "dbname": "postgres",
        "application_name": "pgvault",
    }
    assert _parsed(ConnectionParams(dbname="sales"))["dbname"] == "sales"


def test_a_conninfo_dbname_is_used_whole_and_flags_apply_on_top() -> None:
    params = ConnectionParams(port="6000", dbname="host=db1 port=5432 dbname=app password=Pw0rd99")
    parsed = _parsed(params)
    assert parsed == {"host": "db1", "port": "6000", "dbname": "app", "password": "Pw0rd99"}
    assert "Pw0rd99" not in redact("connection to db1 with Pw0rd99 failed")
    # An inventory reconnects to another database with the same settings.
    assert _parsed(params, dbname="sales")["dbname"] == "sales"
    uri = ConnectionParams(dbname="postgresql://u@db2:5434/app")
    assert uri.dbname_is_conninfo and _parsed(uri)["host"] == "db2"
    assert ConnectionParams(dbname="").dbname_is_conninfo
