"""`A` on the WAL view: repair the archive's gaps from the server's pg_wal, as
`pgvault --batch check-wal-archive --repair --detach` does (a `wal-repair` job).

The segments are read from a data directory on this host, or from the server the
connection names (its data directory, or pg_read_binary_file); core validates the request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions
from textual.app import ComposeResult
from textual.containers import Grid, Vertical, VerticalScroll
from textual.widgets import Input, Label

from core.backup.request import parse_port
from core.jobs import Job
from core.postgres.connection import ConnectionParams
from core.urls import parse_location
from core.wal.repair import RepairRequest
from core.wal.repair_job import WAL_REPAIR
from tui.modals.job_form import JobFormScreen, Parsed


@dataclass(frozen=True)
class RepairDefaults:
    """The connection of the server's newest backup job (never a password)."""

    host: str = ""
    port: str = ""
    user: str = ""
    dbname: str = ""


def repair_defaults(jobs: Sequence[Job], server: str) -> RepairDefaults:
    backups = sorted(
        (j for j in jobs if j.kind == "backup" and j.server == server), key=lambda j: j.id
    )
    if not backups:
        return RepairDefaults()
    connection = dict(backups[-1].options.get("connection") or {})
    dbname = str(connection.get("dbname") or "")
    if ConnectionParams(dbname=dbname).dbname_is_conninfo and dbname:
        # The agent's backups name the server by its datasource, a whole conninfo string
        # in dbname: the fields get its parts (never a password), not the string in Database.
        try:
            parts = psycopg2.extensions.parse_dsn(dbname)
        except psycopg2.ProgrammingError:
            parts = {}
        connection["dbname"] = parts.get("dbname", "")
        for key in ("host", "port", "user"):
            connection[key] = connection.get(key) or parts.get(key)
    return RepairDefaults(
        *(str(connection.get(k) or "") for k in ("host", "port", "user", "dbname"))
    )


def build_repair_request(url: str, server: str, fields: Mapping[str, str]) -> RepairRequest:
    """The request the form describes: a data directory, else the connection."""
    value = {k: v.strip() for k, v in fields.items()}
    if value.get("pgdata"):
        path = os.path.abspath(os.path.expanduser(value["pgdata"]))
        return RepairRequest(parse_location(url), server, pgdata=path)
    port = value.get("port")
    params = ConnectionParams(
        value.get("host") or None,
        parse_port(port) if port else None,  # said here, not by a job failing to connect
        value.get("user") or None,
        value.get("dbname") or "postgres",
    )
    return RepairRequest(parse_location(url), server, connection=params)


class WalRepairScreen(JobFormScreen):
    """Dismissed with the wal-repair job's id, or None when abandoned."""

    kind = WAL_REPAIR
    what = "WAL repair"
    OPTION_FIELDS = {
        "--pgdata": "Data directory",
        "--host": "Host",
        "--port": "Port",
        "--user": "User",
        "--dbname": "Database",
    }
    ERROR_FIELDS = {
        "--pgdata": "pgdata",
        "data directory": "pgdata",
        "--port": "port",
        "port '": "port",
    }

    def __init__(
        self, url: str, label: str, server: str, defaults: RepairDefaults, state_dir: str | None
    ) -> None:
        super().__init__(state_dir)
        self.url = url
        self.label = label
        self.server = server
        self.defaults = defaults

    def compose(self) -> ComposeResult:
        d = self.defaults
        with Vertical(id="dialog", classes="form"):
            yield Label(f"Repair the WAL archive of {self.server}", id="dialog-title")
            with VerticalScroll(id="form-body"), Grid(id="form-grid"):
                for field_id, label, value, placeholder in (
                    (
                        "pgdata",
                        "Data directory",
                        "",
                        "the server's PGDATA on this host (empty: connect)",
                    ),
                    ("host", "Host", d.host, "host or socket directory"),
                    ("port", "Port", d.port, "5432"),
                    ("user", "User", d.user, "postgres"),
                    ("dbname", "Database", d.dbname, "postgres"),
                ):
                    yield Label(label, classes="form-label")
                    yield from self.checked_field(
                        field_id,
                        [Parsed(parse_port, optional=True)] if field_id == "port" else [],
                        value=value,
                        placeholder=placeholder,
                    )
            yield from self.form_footer(
                "Start repair",
                f"in {self.label}: every missing segment still in pg_wal is archived again as "
                "wal-archive would; what is gone is reported as lost",
            )

    def on_mount(self) -> None:
        self.focus_first(self.query_one("#pgdata", Input))

    def value(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value

    def build_request(self) -> RepairRequest:
        names = ("pgdata", "host", "port", "user", "dbname")
        return build_repair_request(self.url, self.server, {f: self.value(f) for f in names})
