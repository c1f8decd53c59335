"""`r` on a logical backup: restore a database (under its name or a new one) or some of its
tables (into the same or an existing database) on a running server, as
`pgvault --batch restore ... --database NAME --detach` does; for an `--all-databases`
backup, every database after its globals.sql (`restore --all-databases`).

The form builds core's `LogicalRestoreRequest` and checks it with core's own rules
(`validate_request`); the `logical-restore` job runs in its own process and the form
closes on the jobs view, where it appears with its progress. Conflicts on the target
(an existing database or table without `clean`) are the job's to find: they need the
server, and the job fails naming them, as the command line exits 3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Grid, Vertical, VerticalScroll
from textual.validation import Validator
from textual.widgets import Checkbox, Input, Label

from core.backup.request import parse_bandwidth, parse_jobs, parse_port
from core.demo import Demo
from core.errors import InputError
from core.jobs import Job
from core.logical.jobs import LOGICAL_RESTORE
from core.logical.restore import LogicalRestoreRequest, validate_request
from core.postgres.connection import ConnectionParams
from core.storage import StoreConfig
from core.urls import parse_location
from tui.adapter import BackupRef
from tui.config import RESTORE_JOBS
from tui.modals.job_form import JobFormScreen, JobKeys, Parsed
from tui.modals.new_backup import conninfo_with_password

#: pg_restore -j, as `pgvault --batch restore -J` defaults for a logical restore
DEFAULT_JOBS = 2

FIELDS: tuple[tuple[str, str, str], ...] = (
    # (id, label, placeholder)
    ("backup", "Backup", "a logical backup's ID, its name, or latest"),
    ("database", "Database", "the backup's database to restore"),
    ("tables", "Tables", "PATTERN ... (empty: the whole database)"),
    ("new_db_name", "New name", "a database restore: NEW (empty: its own name)"),
    ("into_db", "Into database", "a table restore: an EXISTING one (empty: the same)"),
    ("host", "Host", "host name or socket directory (empty: libpq default)"),
    ("port", "Port", "5432 (empty: libpq default)"),
    ("user", "User", "(empty: libpq default)"),
    ("password", "Password", "(empty: .pgpass or PGPASSWORD)"),
    ("jobs", "Parallel (-J)", "pg_restore -j and downloads at once"),
    ("bandwidth", "Bandwidth cap", "on downloads, bytes/s, e.g. 20MB (empty: no limit)"),
)


@dataclass(frozen=True)
class Target:
    """The running server a logical restore goes into, as the form first shows it."""

    host: str = ""
    port: str = ""
    user: str = ""


def target_defaults(jobs: Sequence[Job], demo: Demo | None, server: str) -> Target:
    """The connection of the newest backup job of that server (logical or physical; never a
    password), else the demo's when it is the demo's server, else libpq's defaults."""
    mine = [j for j in jobs if j.server == server and j.kind in ("logical-backup", "backup")]
    if mine:
        connection = max(mine, key=lambda j: j.id).options.get("connection") or {}
        return Target(
            *(str(connection.get(k) or "") for k in ("host", "port", "user")),
        )
    if demo is not None:
        params = demo.connection()
        return Target(params["host"], params["port"], params["user"])
    return Target()


def _named(backup: str) -> str:
    if not backup.strip():
        raise InputError("name the backup: a logical backup's ID, its name, or latest")
    return backup.strip()


#: the fields checked as they are typed, by the parsers `build_logical_restore_request` uses
#: (their errors shown under them): field -> (parser, whether empty is fine)
CHECKED: dict[str, tuple[Callable[[str], object], bool]] = {
    "backup": (_named, False),
    "port": (parse_port, True),
    "jobs": (parse_jobs, True),
    "bandwidth": (parse_bandwidth, True),
}


def field_validators(field_id: str) -> list[Validator]:
    checked = CHECKED.get(field_id)
    return [Parsed(*checked)] if checked is not None else []


def build_logical_restore_request(
    ref: BackupRef, values: dict[str, str], clean: bool, all_databases: bool = False
) -> LogicalRestoreRequest:
    """The request the form describes, checked as the command line checks it."""
    backup = _named(values.get("backup", ""))
    port = values.get("port", "").strip()
    dbname = "postgres"
    if values.get("password"):
        dbname = conninfo_with_password(dbname, values["password"])
    request = LogicalRestoreRequest(
        location=parse_location(ref.url),
        server=ref.server,
        backup=backup,
        store_config=StoreConfig(
            jobs=RESTORE_JOBS,
            max_download_bandwidth=parse_bandwidth(values.get("bandwidth", "")),
        ),
        connection=ConnectionParams(
            host=values.get("host", "").strip() or None,
            port=parse_port(port) if port else None,
            user=values.get("user", "").strip() or None,
            dbname=dbname,
        ),
        database=values.get("database", "").strip() or None,
        new_db_name=values.get("new_db_name", "").strip() or None,
        into_db=values.get("into_db", "").strip() or None,
        tables=tuple(values.get("tables", "").split()),
        clean=clean,
        jobs=parse_jobs(values.get("jobs", "").strip() or DEFAULT_JOBS),
        all_databases=all_databases,
    )
    validate_request(request)
    return request


class LogicalRestoreScreen(JobFormScreen):
    """Dismissed with the logical-restore job's id, or None when abandoned."""

    kind = LOGICAL_RESTORE
    what = "logical restore"
    REQUIRED = frozenset({"backup"})
    OPTION_FIELDS = {
        "--database": "Database",
        "--table": "Tables",
        "--new-db-name": "New name",
        "--into-db": "Into database",
        "--host": "Host",
        "--port": "Port",
        "--jobs": "Parallel (-J)",
        "--max-bandwidth": "Bandwidth cap",
        "--clean": "Clean",
        "--all-databases": "All databases",
    }

    def __init__(
        self, ref: BackupRef, target: Target, state_dir: str | None, keys: JobKeys | None = None
    ) -> None:
        super().__init__(state_dir, keys)
        self.ref = ref
        self.target = target

    def _initial(self) -> dict[str, str]:
        manifest = self.ref.logical
        names = [d.name for d in manifest.databases] if manifest is not None else []
        return {
            "backup": self.ref.info.backup_id,
            "database": names[0] if len(names) == 1 else "",
            "host": self.target.host,
            "port": self.target.port,
            "user": self.target.user,
            "jobs": str(DEFAULT_JOBS),
        }

    def _placeholder(self, field_id: str, default: str) -> str:
        manifest = self.ref.logical
        if field_id == "database" and manifest is not None and len(manifest.databases) > 1:
            return "one of: " + ", ".join(d.name for d in manifest.databases)
        return default

    def compose(self) -> ComposeResult:
        initial = self._initial()
        with Vertical(id="dialog", classes="form"):
            yield Label(f"Restore logical backup of {self.ref.server}", id="dialog-title")
            with VerticalScroll(id="form-body"), Grid(id="form-grid"):
                for field_id, label, placeholder in FIELDS:
                    yield Label(label, classes="form-label")
                    yield from self.checked_field(
                        field_id,
                        field_validators(field_id),
                        value=initial.get(field_id, ""),
                        placeholder=self._placeholder(field_id, placeholder),
                        password=field_id == "password",
                    )
                    if field_id == "into_db":
                        yield Label("Clean", classes="form-label")
                        yield Checkbox("replace an existing database or tables", id="clean")
                        if self.ref.logical is not None and self.ref.logical.globals_file:
                            yield Label("All databases", classes="form-label")
                            yield Checkbox(
                                "every one, after globals.sql (roles, tablespaces)",
                                id="all_databases",
                            )
            yield from self.form_footer(
                "Start restore",
                f"from {self.ref.label}; into a running server, owned by the user who "
                "restores (no owners, no grants)",
            )

    def on_mount(self) -> None:
        first = "new_db_name" if self.value("database") else "database"
        self.focus_first(self.query_one(f"#{first}", Input))

    def value(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value

    def build_request(self) -> LogicalRestoreRequest:
        values = {field_id: self.value(field_id) for field_id, _, _ in FIELDS}
        every = self.query("#all_databases")
        return build_logical_restore_request(
            self.ref,
            values,
            self.query_one("#clean", Checkbox).value,
            all_databases=bool(every) and self.query_one("#all_databases", Checkbox).value,
        )
