"""Where --repair reads pg_wal: a local directory, or the server through pg_read_binary_file."""

from __future__ import annotations

import os

import pytest

from core.errors import InputError
from core.postgres.connection import ConnectionParams, Session
from core.urls import parse_location
from core.wal.repair import PgWal, RepairRequest, validate_request
from tests.support.postgres import Cluster
from tests.support.wal import pg_wal_bytes, switch_segments


def test_a_segment_is_read_through_sql_as_from_the_directory(pg: Cluster, tmp_path: object) -> None:
    name = switch_segments(pg, 1, rows=100)[0]
    scratch = str(tmp_path)
    directory = os.path.join(pg.data, "pg_wal")
    with Session(ConnectionParams(pg.sock, str(pg.port), "postgres")) as session:
        through_sql = PgWal(directory, session, scratch)
        wal = through_sql.read(name)
        assert wal is not None and wal.data == pg_wal_bytes(pg, name)
        assert "pg_read_binary_file" in through_sql.where
        assert through_sql.read("0000000100000000000000FF") is None
    local = PgWal(directory, None, scratch).read(name)
    assert local is not None and local.sha256 == wal.sha256
    assert os.listdir(scratch) == []  # the private copy is removed


def test_a_repair_needs_exactly_one_source(tmp_path: object) -> None:
    where = parse_location(f"file://{tmp_path}/dest")
    with pytest.raises(InputError, match="give --pgdata DIR or the connection flags"):
        validate_request(RepairRequest(where, "pg1"))
    with pytest.raises(InputError, match="not both"):
        validate_request(RepairRequest(where, "pg1", str(tmp_path), ConnectionParams()))
    with pytest.raises(InputError, match="not a PostgreSQL data directory"):
        validate_request(RepairRequest(where, "pg1", pgdata=str(tmp_path)))
