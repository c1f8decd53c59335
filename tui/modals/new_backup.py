"""`n`: a backup started from a form, as `pgvault --batch backup --detach` starts one.

Every field is checked as it is typed, by the very parsers the command line uses
(core.backup.request), and the request is built by the same function; the job starts in
its own process (it outlives the console) and the form closes on the jobs view, where it
appears.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from textual.app import ComposeResult
from textual.containers import Grid, Vertical, VerticalScroll
from textual.suggester import SuggestFromList
from textual.validation import Validator
from textual.widgets import Checkbox, Input, Label, Select

from core.backup import BackupRequest
from core.backup.job import BACKUP
from core.backup.request import (
    BACKUP_COMPRESSIONS,
    make_backup_request,
    parse_backup_name,
    parse_bandwidth,
    parse_destination,
    parse_jobs,
    parse_port,
    parse_server_name,
)
from core.catalog.chains import DIFFERENTIAL, FULL, INCREMENTAL
from core.demo import Demo
from core.errors import InputError, PgvaultError
from core.jobs import Job, JobKind
from core.logical.jobs import LOGICAL_BACKUP
from core.logical.request import LogicalBackupRequest
from core.postgres.connection import ConnectionParams
from core.secrets import register_secret
from core.sizes import size_argument
from core.storage import StoreConfig
from core.tags import parse_tags
from core.urls import parse_location, public_url
from tui.adapter import display_url
from tui.modals.job_form import JobFormScreen, JobKeys, Parsed


@dataclass(frozen=True)
class FormDefaults:
    """What the form opens with: the last backup's settings, else the demo's, else blanks."""

    server: str = ""
    destination: str = ""
    host: str = ""
    port: str = ""
    user: str = ""
    dbname: str = "postgres"
    compression: str | None = None
    jobs: str = "2"
    bandwidth: str = ""
    tags: str = ""
    immediate: bool = True
    destinations: tuple[str, ...] = field(default_factory=tuple)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


#: what conninfo_with_password wrote, once the job store dropped its password
_FORM_CONNINFO = re.compile(r"dbname='((?:[^'\\]|\\.)*)'")


def _dbname(value: Any) -> str:
    """The Database field for a recorded dbname: a backup started with a Password recorded
    `dbname='shop'` (its conninfo less the password); the field takes the name back, as
    a Password typed again (or a logical backup) needs it plain."""
    text = _text(value)
    match = _FORM_CONNINFO.fullmatch(text.strip())
    if match is None:
        return text
    return re.sub(r"\\(.)", r"\1", match.group(1))


def form_url(url: str) -> str:
    """A destination as the form shows it: without credentials, but with what says where
    the objects are (an S3 endpoint or region, an Azure account), unlike display_url."""
    try:
        return public_url(parse_location(url))
    except PgvaultError:
        return display_url(url)


def job_destination(job: Job) -> str:
    """Where a backup job wrote, from its recorded location: job.destination is the display
    URL, which drops an S3 endpoint (the form then pointed the next backup at AWS)."""
    try:
        return public_url(BACKUP.decode(job.options).location)
    except (PgvaultError, TypeError, ValueError, KeyError, AttributeError):
        return job.destination or ""


def form_defaults(
    jobs: Sequence[Job], demo: Demo | None, catalog: Sequence[tuple[str, bool]]
) -> FormDefaults:
    """Prefill from the newest backup job's options (never credentials), else the demo."""
    known = tuple(dict.fromkeys(form_url(url) for url, _ in catalog))
    backups = sorted((j for j in jobs if j.kind == "backup"), key=lambda j: j.id)
    if backups:
        last = backups[-1]
        options = last.options
        connection = options.get("connection") or {}
        store = options.get("store_config") or {}
        tags = options.get("tags") or ()
        bandwidth = store.get("max_bandwidth")
        return FormDefaults(
            server=_text(last.server),
            destination=job_destination(last) or (known[0] if known else ""),
            host=_text(connection.get("host")),
            port=_text(connection.get("port")),
            user=_text(connection.get("user")),
            dbname=_dbname(connection.get("dbname")) or "postgres",
            compression=options.get("compression"),
            jobs=_text(store.get("jobs") or 2),
            bandwidth=size_argument(int(bandwidth)) if bandwidth else "",
            tags=" ".join(f"{k},{v}" for k, v in tags),
            immediate=bool(options.get("immediate_checkpoint", True)),
            destinations=known,
        )
    if demo is not None:
        params = demo.connection()
        return FormDefaults(
            server="demo",
            destination=demo.destination,
            host=params["host"],
            port=params["port"],
            user=params["user"],
            dbname=params["dbname"],
            compression="lz4",
            destinations=known,
        )
    return FormDefaults(server="main", destination=known[0] if known else "", destinations=known)


def conninfo_with_password(dbname: str, password: str) -> str:
    """A libpq conninfo string carrying the password (never stored: jobs strip it)."""

    def quote(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    register_secret(password)
    if "=" in dbname or dbname.startswith(("postgresql://", "postgres://")):
        raise PgvaultError("give the password in the conninfo string itself, or leave it empty")
    return f"dbname={quote(dbname or 'postgres')} password={quote(password)}"


#: the Kind field's logical choice: `backup --database` (pg_dump of one database)
LOGICAL = "logical"
#: what the Kind field offers, as `backup` does: full, --incremental, --differential,
#: and a logical backup of the Database field's database (--database)
KINDS = (FULL, INCREMENTAL, DIFFERENTIAL, LOGICAL)
KIND_LABELS = {
    FULL: "full",
    INCREMENTAL: "incremental (changes since the chain's newest backup)",
    DIFFERENTIAL: "differential (changes since the chain's full backup)",
    LOGICAL: "logical (pg_dump of the database above)",
}

FIELDS: tuple[tuple[str, str, str], ...] = (
    # (id, label, placeholder)
    ("server", "Server name", "the catalog name for this cluster, e.g. pg-main"),
    ("destination", "Destination", "s3://bucket/prefix, gs://..., azure://..., file:///dir"),
    ("host", "Host", "host name or socket directory (empty: libpq default)"),
    ("port", "Port", "5432 (empty: libpq default)"),
    ("user", "User", "(empty: libpq default)"),
    ("dbname", "Database", "postgres, or a conninfo string"),
    ("password", "Password", "(empty: .pgpass or PGPASSWORD)"),
    ("jobs", "Parallel (-J)", "parts uploaded at once"),
    ("bandwidth", "Bandwidth cap", "bytes/s, e.g. 20MB (empty: no limit)"),
    ("name", "Backup name", "(optional) a name to restore it by"),
    ("tags", "Tags", "KEY,VALUE ... (optional)"),
)


def logical_request(
    form: NewBackupScreen,
    database: str,
    store_config: StoreConfig,
    connection: ConnectionParams,
    compression: str | None,
) -> LogicalBackupRequest:
    """`backup --database NAME` from the form: pg_dump's own compressions, no checkpoint."""
    if "=" in database or database.startswith(("postgresql://", "postgres://")):
        raise InputError("a logical backup needs the database's name in Database")
    if compression in PHYSICAL_ONLY_COMPRESSIONS:
        raise InputError(f"{compression}: not available for a logical backup (gzip, lz4, zstd)")
    return LogicalBackupRequest(
        location=parse_destination(form.value("destination")),
        server=parse_server_name(form.value("server")),
        database=database,
        store_config=store_config,
        connection=connection,
        jobs=store_config.jobs,
        compression=compression,
        name=parse_backup_name(form.value("name").strip()),
        tags=parse_tags(form.value("tags")),
    )


#: compressions only a physical backup has (as `backup --database` refuses them)
PHYSICAL_ONLY_COMPRESSIONS = frozenset({"bzip2", "snappy"})


class NewBackupScreen(JobFormScreen):
    """Dismissed with the new backup job's id, or None when abandoned."""

    kind: JobKind[Any] = BACKUP  # LOGICAL_BACKUP once the Kind field says logical
    what = "backup"
    OPTION_FIELDS = {
        "--port": "Port",
        "--jobs": "Parallel (-J)",
        "--max-bandwidth": "Bandwidth cap",
        "--name": "Backup name",
        "--tags": "Tags",
        "--database": "Database",
        "--incremental": "Kind",
        "--differential": "Kind",
    }
    REQUIRED = frozenset({"server", "destination", "jobs"})

    def __init__(
        self, defaults: FormDefaults, state_dir: str | None, keys: JobKeys | None = None
    ) -> None:
        super().__init__(state_dir, keys)
        self.defaults = defaults

    def _validators(self, field_id: str) -> list[Validator]:
        parsers: dict[str, tuple[Callable[[str], object], bool]] = {
            "server": (parse_server_name, False),
            "destination": (parse_destination, False),
            "port": (parse_port, True),
            "jobs": (parse_jobs, False),
            "bandwidth": (parse_bandwidth, True),
            "name": (parse_backup_name, True),
            "tags": (parse_tags, True),
        }
        if field_id not in parsers:
            return []
        parse, optional = parsers[field_id]
        return [Parsed(parse, optional)]

    def compose(self) -> ComposeResult:
        d = self.defaults
        values = {
            "server": d.server,
            "destination": d.destination,
            "host": d.host,
            "port": d.port,
            "user": d.user,
            "dbname": d.dbname,
            "password": "",
            "jobs": d.jobs,
            "bandwidth": d.bandwidth,
            "name": "",
            "tags": d.tags,
        }
        with Vertical(id="dialog", classes="form"):
            yield Label("New backup", id="dialog-title")
            with VerticalScroll(id="form-body"), Grid(id="form-grid"):
                for field_id, label, placeholder in FIELDS:
                    yield Label(label, classes="form-label")
                    yield from self.checked_field(
                        field_id,
                        self._validators(field_id),
                        value=values[field_id],
                        placeholder=placeholder,
                        password=field_id == "password",
                        suggester=SuggestFromList(d.destinations, case_sensitive=True)
                        if field_id == "destination" and d.destinations
                        else None,
                    )
                    if field_id == "password":
                        yield Label("Compression", classes="form-label")
                        yield Select(
                            [(name or "none", name or "none") for name in BACKUP_COMPRESSIONS],
                            value=d.compression or "none",
                            allow_blank=False,
                            compact=True,
                            id="compression",
                        )
                        yield Label("Kind", classes="form-label")
                        yield Select(
                            [(KIND_LABELS[kind], kind) for kind in KINDS],
                            value=FULL,
                            allow_blank=False,
                            compact=True,
                            id="kind",
                        )
                yield Label("Checkpoint", classes="form-label", id="immediate-label")
                yield Checkbox("fast (immediate) checkpoint", d.immediate, id="immediate")
            yield from self.form_footer("Start backup")

    def on_mount(self) -> None:
        for widget in self.query(Input):
            self.show_field_error(widget, widget.validate(widget.value))
        server = self.query_one("#server", Input)
        destination = self.query_one("#destination", Input)
        first = server if not server.value else destination if not destination.value else None
        self.focus_first(first or self.query_one("#host", Input))

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "kind":
            # A logical backup (pg_dump) takes no checkpoint: its option is not shown, and
            # logical_request() sends none.
            physical = event.value != LOGICAL
            for widget_id in ("#immediate-label", "#immediate"):
                self.query_one(widget_id).display = physical

    def value(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value

    def build_request(self) -> BackupRequest | LogicalBackupRequest:
        """The request, with the command line's rules (raises PgvaultError on bad input);
        the job kind follows the Kind field."""
        database = self.value("dbname").strip() or "postgres"
        dbname = database
        password = self.value("password")
        if password:
            dbname = conninfo_with_password(dbname, password)
        compression = self.query_one("#compression", Select).value
        kind = self.query_one("#kind", Select).value
        port = self.value("port").strip()
        store_config = StoreConfig(
            jobs=parse_jobs(self.value("jobs")),
            max_bandwidth=parse_bandwidth(self.value("bandwidth")),
        )
        connection = ConnectionParams(
            host=self.value("host").strip() or None,
            port=parse_port(port) if port else None,
            user=self.value("user").strip() or None,
            dbname=dbname,
        )
        method = None if compression in ("none", Select.NULL) else str(compression)
        if kind == LOGICAL:
            self.kind = LOGICAL_BACKUP
            return logical_request(self, database, store_config, connection, method)
        self.kind = BACKUP
        return make_backup_request(
            parse_destination(self.value("destination")),
            parse_server_name(self.value("server")),
            store_config=store_config,
            connection=connection,
            compression=method,
            name=parse_backup_name(self.value("name").strip()),
            immediate_checkpoint=self.query_one("#immediate", Checkbox).value,
            tags=parse_tags(self.value("tags")),
            incremental=None if kind in (FULL, Select.NULL) else str(kind),
        )
