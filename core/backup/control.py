"""pg_control as a backup uses it: proof the data directory is the server's, and its copy.

Everything that reads the control file's bytes is here, so that a version-aware reader
(core.postgres.control) can take its place in one module.
"""

from __future__ import annotations

import os
import struct
import time

import google_crc32c

from core.archives import ArchiveSetWriter
from core.errors import OperationFailed
from core.postgres.connection import ServerFacts
from core.postgres.pgdata import PG_CONTROL

PG_CONTROL_SIZE = 8192
PG_CONTROL_CRC_OFFSET = 288


def read_pg_control(pgdata: str) -> tuple[bytes, os.stat_result]:
    """global/pg_control with a valid CRC (it is rewritten in place: re-read a torn copy)."""
    path = os.path.join(pgdata, PG_CONTROL)
    for attempt in range(20):
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                data = fh.read()
        except OSError as exc:
            raise OperationFailed(f"cannot read {path}: {exc.strerror}") from None
        if len(data) >= PG_CONTROL_CRC_OFFSET + 4:
            stored = struct.unpack_from("<I", data, PG_CONTROL_CRC_OFFSET)[0]
            if google_crc32c.value(data[:PG_CONTROL_CRC_OFFSET]) == stored:
                return data, st
        time.sleep(0.01 * (attempt + 1))
    raise OperationFailed(f"{path} has an invalid checksum: the control file is damaged")


def system_identifier(control: bytes) -> str:
    return str(struct.unpack_from("<Q", control, 0)[0])


def check_data_directory(facts: ServerFacts) -> None:
    """The data directory must be on this host and belong to the server we talk to."""
    pgdata = facts.data_directory
    if not os.path.isdir(pgdata):
        raise OperationFailed(
            f"the data directory {pgdata} is not on this host: run pgvault where "
            "PostgreSQL's data directory and tablespaces can be read"
        )
    control, _ = read_pg_control(pgdata)
    on_disk = system_identifier(control)
    if on_disk != facts.system_identifier:
        raise OperationFailed(
            f"{pgdata} belongs to another cluster (system identifier {on_disk}, the "
            f"server says {facts.system_identifier}): run pgvault on the database host"
        )


def add_pg_control(data: ArchiveSetWriter, pgdata: str) -> None:
    """pg_control into the data archive, read after every other file as PostgreSQL requires."""
    control, control_stat = read_pg_control(pgdata)
    data.add_bytes(
        PG_CONTROL,
        control,
        PG_CONTROL,
        control_stat.st_mode & 0o7777,
        control_stat.st_uid,
        control_stat.st_gid,
        control_stat.st_mtime,
    )
