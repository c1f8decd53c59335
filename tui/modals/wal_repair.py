"""`A` on the WAL view: repair the archive's gaps from the server's pg_wal, as
`pgvault --batch check-wal-archive --repair --detach` does (a `wal-repair` job).

The segments are read from a data directory on this host, or from the server the
connection names (its data directory, or pg_read_binary_file); core validates the request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Input, Label, Static

from core.backup.request import parse_port
from core.jobs import Job
from core.postgres.connection import ConnectionParams
from core.urls import parse_location
from core.wal.repair import RepairRequest
from core.wal.repair_job import WAL_REPAIR
from tui.modals.job_form import JobFormScreen


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
    connection = backups[-1].options.get("connection") or {}
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
            with Grid(id="form-grid"):
                yield Label("Data directory", classes="form-label")
                yield Input(
                    placeholder="the server's PGDATA on this host (empty: connect)",
                    id="pgdata",
                    compact=True,
                )
                yield Label("Host", classes="form-label")
                yield Input(d.host, placeholder="host or socket directory", id="host", compact=True)
                yield Label("Port", classes="form-label")
                yield Input(d.port, placeholder="5432", id="port", compact=True)
                yield Label("User", classes="form-label")
                yield Input(d.user, placeholder="postgres", id="user", compact=True)
                yield Label("Database", classes="form-label")
                yield Input(d.dbname, placeholder="postgres", id="dbname", compact=True)
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

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#form-status", Static).update("")
