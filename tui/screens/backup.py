"""One backup: what backup.info says, the databases and tables it holds, and its WAL."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Static

from core.catalog.backup_info import DONE, BackupInfo
from core.catalog.browse import WalArchive
from core.catalog.manifest import PgvaultManifest, TableRecord
from core.errors import DecryptionFailed
from tui import fmt
from tui.adapter import BackupRef, ServerView, load_manifest, load_wal
from tui.screens import logical
from tui.screens.backup_actions import (
    BACKUP_ACTIONS,
    UNLOCK,
    BackupActions,
    backup_action_allowed,
    encryption_note,
    unlock_allowed,
)
from tui.screens.base import FILTER_BINDING, ConsoleScreen, open_filter
from tui.screens.catalog import STATUS_STYLE, stored_size, took
from tui.state import ConsoleState
from tui.tasks import Tasks
from tui.widgets.keybar import KeyBar
from tui.widgets.table import Col, ResponsiveTable
from tui.widgets.topbar import TopBar

DATABASE_COLUMNS = (
    Col("name", "DATABASE", 10, flex=True),
    Col("size", "SIZE", 9, right=True),
)
TABLE_COLUMNS = (
    Col("database", "DATABASE", 9, min_width=50),
    Col("table", "TABLE", 16, flex=True),
    Col("kind", "KIND", 5, min_width=60),
    Col("size", "SIZE", 9, right=True),
)
KIND_SHORT = {"table": "table", "partitioned table": "part", "materialized view": "matv"}


def summary_text(
    ref: BackupRef,
    manifest: PgvaultManifest | None,
    loaded: bool,
    encryption: Text | None = None,
    unread: str | None = None,
) -> Text:
    """backup.info and pgvault.json's figures; `encryption_note`'s line, and `unread`: why
    pgvault.json was not read (an encrypted backup's locked key)."""
    info = ref.info
    text = Text()
    text.append(f"backup {info.backup_id}", style="bold")
    if info.backup_name:
        text.append(f" ({info.backup_name})", style="bold")
    text.append(f" of {ref.server} in {ref.label}\n")
    text.append(info.status, style=STATUS_STYLE.get(info.status, "yellow"))
    text.append(f"  {ref.kind}")
    text.append(f"  compression {info.compression or 'none'}")
    if manifest is not None:
        text.append(f"  checksums {manifest.checksum_algorithm.lower()}")
        version = manifest.postgres.get("version")
        if isinstance(version, int):
            text.append(f"  PostgreSQL {fmt.pg_version(version)}")
    elif info.version:
        text.append(f"  PostgreSQL {fmt.pg_version(info.version)}")
    text.append("\n")
    text.append(f"began {fmt.date_time(info.begin_time)}  ended {fmt.date_time(info.end_time)}")
    text.append(f"  took {fmt.duration(took(info))}\n")
    stored, data = stored_size(info, ref.stored), info.cluster_size
    text.append(f"data {fmt.size(data)}  stored {fmt.size(stored)}")
    if stored and data:
        text.append(f" ({stored * 100 / data:.0f}%)")
    if manifest is not None:
        text.append(f"  {len(manifest.files)} files in {len(manifest.archives)} archive(s)")
    text.append("\n")
    if info.begin_wal and info.end_wal:
        text.append(f"WAL {info.begin_wal} .. {info.end_wal}  timeline {info.timeline}\n")
    if info.tablespaces:
        names = ", ".join(f"{t.name} ({t.location})" for t in info.tablespaces)
        text.append(f"tablespaces {names}\n")
    if info.error:
        text.append(f"error: {info.error}\n", style="bold red")
    if encryption is not None:
        text.append_text(encryption)
        text.append("\n")
    text.append(_contents_note(manifest, loaded, unread), style="yellow")
    text.rstrip()
    return text


def _contents_note(manifest: PgvaultManifest | None, loaded: bool, unread: str | None) -> str:
    """Why the databases and tables are not listed ('' when they are, or still loading)."""
    if unread is not None:
        return unread
    if loaded and manifest is None:
        return "no pgvault.json (a backup barman-cloud wrote): databases and tables unknown"
    return ""


def chain_text(chain: tuple[BackupInfo, ...], server: ServerView, backup_id: str) -> Text:
    """The backups a restore of an incremental reads, its full backup first, and their sum."""
    text = Text()
    sizes = [stored_size(b, server.stored.get(b.backup_id)) or 0 for b in chain]
    text.append("chain", style="bold")
    text.append(f": a restore reads {len(chain)} backups, {fmt.size(sum(sizes))} stored\n")
    for depth, (info, size) in enumerate(zip(chain, sizes, strict=True)):
        lead = "   " * (depth - 1) + "└─ " if depth else ""
        style = "bold" if info.backup_id == backup_id else ""
        text.append(f"  {lead}", style="dim")
        text.append(f"{info.backup_id}  {server.kind(info.backup_id):<12}", style=style)
        text.append(f" {fmt.size(size):>9}  ended {fmt.date_time(info.end_time)}", style=style)
        if info.status != DONE:
            text.append(f"  {info.status}", style=STATUS_STYLE.get(info.status, "yellow"))
        text.append("\n")
    text.rstrip()
    return text


def logical_summary(ref: BackupRef) -> Text:
    """A logical backup's heading: what logical.json says (read with the listing)."""
    info, manifest = ref.info, ref.logical
    text = Text()
    text.append(f"logical backup {info.backup_id}", style="bold")
    if info.backup_name:
        text.append(f" ({info.backup_name})", style="bold")
    text.append(f" of {ref.server} in {ref.label}\n")
    text.append(info.status, style=STATUS_STYLE.get(info.status, "yellow"))
    if info.status in logical.UNKNOWN:
        text.append(f"  stored {fmt.size(ref.stored)}  {info.error or ''}\n")
        text.append(logical.holds(manifest) if manifest else "")
        return text
    text.append(f"  began {fmt.date_time(info.begin_time)}  took {fmt.duration(took(info))}")
    text.append(f"  data {fmt.size(info.cluster_size)}  stored {fmt.size(ref.stored)}\n")
    if manifest is not None:
        text.append_text(logical.details(manifest))
    text.rstrip()
    return text


def wal_line(archive: WalArchive, backup_id: str) -> Text:
    """Whether the archive holds what the backup needs, and how far recovery can go."""
    coverage = next((c for c in archive.coverage if c.backup_id == backup_id), None)
    text = Text()
    if coverage is None:
        text.append("WAL archive: not checked (only DONE backups are)", style="dim")
        return text
    if coverage.missing:
        text.append(
            f"WAL archive: {len(coverage.missing)} segment(s) the backup needs are missing "
            f"(first {coverage.missing[0]}): it cannot be restored",
            style="bold red",
        )
    elif coverage.gaps_after:
        text.append("WAL archive: the backup's WAL is complete; ", style="green")
        text.append(
            f"point-in-time recovery stops at {coverage.recoverable_until} "
            f"({len(coverage.gaps_after)} segment(s) missing after it)",
            style="yellow",
        )
    else:
        text.append("WAL archive: complete; ", style="green")
        text.append(f"point-in-time recovery up to {coverage.recoverable_until or '-'}")
    return text


def table_cells(table: TableRecord) -> dict[str, Text]:
    name = table.name if table.schema == "public" else f"{table.schema}.{table.name}"
    if table.persistence == "unlogged":
        name += " (unlogged)"
    return {
        "database": Text(table.database),
        "table": Text(name),
        "kind": Text(KIND_SHORT.get(table.kind, table.kind)),
        "size": Text(fmt.size(table.size), justify="right"),
    }


class BackupScreen(BackupActions, ConsoleScreen):
    """Pushed from the catalog with enter; esc goes back."""

    VIEW = "catalog"
    HELP_TITLE = "Backup"
    HELP_TEXT = (
        "What one backup holds, without downloading it: backup.info, and pgvault.json's "
        "databases and tables with the sizes they had when the backup was taken (largest "
        "first). The WAL line checks the archive holds every segment the backup needs. A "
        "logical backup shows its logical.json: databases, and each table's row estimate "
        "and size at backup time."
    )

    BINDINGS = [
        Binding("escape", "back", "Back", key_display="esc", id="back"),
        *BACKUP_ACTIONS,
        UNLOCK,
        Binding("tab", "switch_pane", "Pane", key_display="tab", show=False, id="pane.switch"),
        FILTER_BINDING,
    ]

    def __init__(self, ref: BackupRef, state: ConsoleState, tasks: Tasks) -> None:
        super().__init__(state)
        self.ref = ref
        self.tasks = tasks
        self.manifest: PgvaultManifest | None = None
        self.loaded = False
        #: why pgvault.json is not shown (its server's key is locked, or did not open it)
        self.unread: str | None = None
        self.wal_checked = False
        self.filter_terms: list[str] = []

    def compose(self) -> ComposeResult:
        yield TopBar(self.state, self.VIEW)
        if self.ref.logical is not None:
            # logical.json came with the listing, and a logical backup needs no WAL
            yield Static(logical_summary(self.ref), id="backup-info")
        else:
            yield Static(self._summary(), id="backup-info")
            server = self.server()
            chain = server.chain(self.ref.info.backup_id) if server else ()
            if server is not None and len(chain) > 1:
                yield Static(chain_text(chain, server, self.ref.info.backup_id), id="backup-chain")
            yield Static(Text("WAL archive: checking ...", style="dim"), id="backup-wal")
        columns = TABLE_COLUMNS if self.ref.logical is None else logical.LOGICAL_TABLE_COLUMNS
        with Horizontal(id="backup-contents"):
            yield ResponsiveTable(DATABASE_COLUMNS, id="databases", openable=False)
            yield ResponsiveTable(columns, id="tables", openable=False)
        yield Input(placeholder="filter tables: words to match (esc clears)", id="filter")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#tables", ResponsiveTable).focus()
        ref = self.ref
        if ref.logical is not None:
            self.loaded = self.wal_checked = True
            self.show_contents()
            return
        self.load_manifest()
        server = self.server()
        backups = list(server.backups) if server else [ref.info]
        self.tasks.run(
            lambda: load_wal(ref.url, ref.server, backups),
            self.wal_loaded,
            f"checking the WAL archive of {ref.server}",
            group="backup wal",
            exclusive=True,
        )

    def load_manifest(self) -> None:
        """Read pgvault.json in a thread, unless it is sealed with a key nothing here holds."""
        ref = self.ref
        if self.state.locked(ref):
            self.loaded, self.unread = True, "databases and tables: in its encrypted manifest"
            self._show_summary()
            return
        self.unread = None

        def read() -> PgvaultManifest | DecryptionFailed | None:
            try:
                return load_manifest(ref.url, ref.server, ref.info.backup_id)
            except DecryptionFailed as exc:  # shown in the summary, where u is offered
                return exc

        self.tasks.run(
            read,
            self.manifest_loaded,
            f"reading the manifest of {ref.info.backup_id}",
            group="backup manifest",
            exclusive=True,
        )

    def keys_changed(self) -> None:
        if self.unread is not None:
            self.load_manifest()
        self._show_summary()
        self.refresh_bindings()

    def _summary(self) -> Text:
        encryption = encryption_note(self.state, self.ref)
        return summary_text(self.ref, self.manifest, self.loaded, encryption, self.unread)

    def _show_summary(self) -> None:
        self.query_one("#backup-info", Static).update(self._summary())

    def server(self) -> ServerView | None:
        """The backup's server as the catalog listed it."""
        view = self.state.destinations.get(self.ref.label)
        return view.server(self.ref.server) if view else None

    def manifest_loaded(self, manifest: PgvaultManifest | DecryptionFailed | None) -> None:
        if not self.is_attached:
            return
        if isinstance(manifest, DecryptionFailed):
            self.unread = f"{manifest}; u unlocks it with another key"
            manifest = None
        self.manifest = manifest
        self.loaded = True
        self._show_summary()
        self.show_contents()
        self.refresh_bindings()

    def wal_loaded(self, archive: WalArchive) -> None:
        if not self.is_attached:
            return
        self.wal_checked = True
        self.query_one("#backup-wal", Static).update(wal_line(archive, self.ref.info.backup_id))

    def show_contents(self) -> None:
        manifest = self.manifest
        databases = self.query_one("#databases", ResponsiveTable)
        tables = self.query_one("#tables", ResponsiveTable)
        if self.ref.logical is not None:
            databases.sync(logical.database_rows(self.ref.logical))
            tables.sync(logical.table_rows(self.ref.logical, self.filter_terms))
            return
        if manifest is None:
            databases.sync([])
            tables.sync([])
            return
        databases.sync(
            [
                (
                    d.name,
                    {
                        "name": Text(d.name),
                        "size": Text(fmt.size(d.size), justify="right"),
                    },
                )
                for d in sorted(manifest.databases, key=lambda d: -(d.size or 0))
            ]
        )
        rows = []
        for index, table in enumerate(sorted(manifest.tables, key=lambda t: -(t.size or 0))):
            haystack = f"{table.database} {table.schema} {table.name} {table.kind}".lower()
            if all(term in haystack for term in self.filter_terms):
                rows.append((f"{index}", table_cells(table)))
        tables.sync(rows)

    def current_backup(self) -> BackupRef:
        return self.ref

    def can(self, action: str) -> bool | None:
        if action == "unlock":
            return unlock_allowed(self.state, self.ref) or self.unread is not None
        return backup_action_allowed(action, self.ref)

    def action_back(self) -> None:
        box = self.query_one("#filter", Input)
        if box.display or self.filter_terms:
            box.value = ""
            box.display = False
            self.filter_terms = []
            self.show_contents()
            self.query_one("#tables", ResponsiveTable).focus()
            return
        self.app.pop_screen()

    def action_switch_pane(self) -> None:
        databases = self.query_one("#databases", ResponsiveTable)
        tables = self.query_one("#tables", ResponsiveTable)
        (databases if tables.has_focus else tables).focus()

    def action_filter(self) -> None:
        open_filter(self)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_terms = event.value.lower().split()
        self.show_contents()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.display = False
        self.query_one("#tables", ResponsiveTable).focus()
