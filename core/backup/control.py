"""pg_control as a backup uses it: proof the data directory is the server's, and its copy."""

from __future__ import annotations

import os

from core.archives import ArchiveSetWriter
from core.errors import OperationFailed
from core.postgres.connection import ServerFacts
from core.postgres.control import read_control
from core.postgres.pgdata import PG_CONTROL
from core.tarstream import FileAttributes


def check_data_directory(facts: ServerFacts) -> None:
    """The data directory must be on this host and belong to the server we talk to."""
    pgdata = facts.data_directory
    if not os.path.isdir(pgdata):
        raise OperationFailed(
            f"the data directory {pgdata} is not on this host: run pgvault where "
            "PostgreSQL's data directory and tablespaces can be read"
        )
    control, _ = read_control(pgdata)
    on_disk = str(control.system_identifier)
    if on_disk != facts.system_identifier:
        raise OperationFailed(
            f"{pgdata} belongs to another cluster (system identifier {on_disk}, the "
            f"server says {facts.system_identifier}): run pgvault on the database host"
        )


def add_pg_control(data: ArchiveSetWriter, pgdata: str) -> None:
    """pg_control into the data archive, read after every other file as PostgreSQL requires."""
    control, control_stat = read_control(pgdata)
    data.add_bytes(PG_CONTROL, control.raw, FileAttributes.of(control_stat))
