"""Keys of logical backups: `<server>/logical/<backup_id>/`, outside barman-cloud's `base/`.

    <server>/logical/<id>/db/<quoted database name>/toc.dat, <dumpId>.dat[.gz|.lz4|.zst]...
    <server>/logical/<id>/globals.sql           --all-databases: roles and tablespaces (SQL)
    <server>/logical/<id>/logical.json          written last: the backup exists once it does

A downloaded `db/<name>/` directory is a pg_dump directory-format archive: `pg_restore`
reads it as it is. IDs end in `L` so that they never collide with a physical backup's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, unquote

from core.catalog.layout import validate_server_name
from core.errors import InputError

LOGICAL_ID_RE = re.compile(r"^\d{8}T\d{6}L$")
MANIFEST = "logical.json"
GLOBALS = "globals.sql"


def is_logical_id(text: str | None) -> bool:
    return bool(text) and LOGICAL_ID_RE.match(text or "") is not None


def refuse_logical(reference: str, command: str) -> None:
    """InputError for a command that applies to physical backups only, given a logical ID."""
    if is_logical_id(reference):
        raise InputError(f"{reference} is a logical backup: {command} applies to physical backups")


def new_backup_id(moment: datetime) -> str:
    """barman's local wall-clock format, marked logical."""
    return moment.strftime("%Y%m%dT%H%M%S") + "L"


def db_dirname(database: str) -> str:
    """A database name as one key segment (percent-encoded: any name is safe)."""
    quoted = quote(database, safe="")
    # `.` and `..` are legal database names but no key's segment: their dots are encoded too
    # (only there: every other name keeps the key it always had).
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def db_name(dirname: str) -> str:
    """db_dirname's inverse."""
    return unquote(dirname)


@dataclass(frozen=True)
class LogicalLayout:
    server: str

    def __post_init__(self) -> None:
        validate_server_name(self.server)

    @property
    def prefix(self) -> str:
        return f"{self.server}/logical/"

    def backup_prefix(self, backup_id: str) -> str:
        return f"{self.prefix}{backup_id}/"

    def manifest(self, backup_id: str) -> str:
        return f"{self.backup_prefix(backup_id)}{MANIFEST}"

    def globals_sql(self, backup_id: str) -> str:
        return f"{self.backup_prefix(backup_id)}{GLOBALS}"

    def dump_prefix(self, backup_id: str, database: str) -> str:
        return f"{self.backup_prefix(backup_id)}db/{db_dirname(database)}/"

    def dump_file(self, backup_id: str, database: str, filename: str) -> str:
        return f"{self.dump_prefix(backup_id, database)}{filename}"
