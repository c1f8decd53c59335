"""barman-cloud's -h/-p/-U/-d semantics, and secrets kept out of messages."""

from __future__ import annotations

import os
import resource

import psycopg2.extensions

from core.postgres.connection import ConnectionParams, Session
from core.secrets import redact
from tests.support.postgres import Cluster


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


def test_a_session_works_with_descriptors_numbered_past_1024(pg: Cluster) -> None:
    """A long-lived console or agent may hold that many files: select(2) refused them."""

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        assert max(held) >= 1024
        with Session(ConnectionParams(pg.sock, str(pg.port), "postgres")) as session:
            assert session.one("select 41 + 1", what="a query") == 42
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
