"""What a logical backup is asked to do: the job's request, apart from the code that runs
it (core.logical.backup), so that the faces and the job records build and read it without
importing pg_dump's driver, psycopg2 or the encryption."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.postgres.connection import ConnectionParams
from core.storage.config import StoreConfig
from core.urls import Location

GiB = 1024**3
#: the one default, whoever builds the request (the command line, the console, the agent)
STAGING_LIMIT = GiB


@dataclass(frozen=True)
class LogicalBackupRequest:
    location: Location
    server: str
    database: str | None  # None: every database (all_databases)
    store_config: StoreConfig = field(default_factory=StoreConfig)
    connection: ConnectionParams = field(default_factory=ConnectionParams)
    tables: tuple[str, ...] = ()  # pg_dump -t patterns; empty: the whole database
    jobs: int = 2  # pg_dump -j, and files uploaded at once
    compression: str | None = None  # pg_dump's -Z method
    name: str | None = None
    staging_dir: str | None = None  # default: the temporary directory
    staging_limit: int = STAGING_LIMIT  # finished files waiting for upload, at most
    pg_bindir: str | None = None
    #: every database, each in its own snapshot, and pg_dumpall --globals-only
    all_databases: bool = False
    #: the ID of a failed, cancelled or killed backup to take again under that ID
    resume: str | None = None
    tags: tuple[tuple[str, str], ...] = ()  # on every object, as a physical backup's --tags
