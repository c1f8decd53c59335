"""View 2: destinations and their servers (left), the selected server's backups (right).

Listings come from the app's destination workers; nothing here touches a store. `enter` on
a backup opens its details (databases, tables, WAL) in a pushed screen.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Click, Key, Resize, ScreenResume
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static, Tree
from textual.widgets.tree import TreeNode

from core.catalog.backup_info import DONE, FAILED, BackupInfo
from core.catalog.chains import DIFFERENTIAL, INCREMENTAL
from core.catalog.tier import ARCHIVE, STANDARD
from core.logical.manifest import LogicalManifest
from tui import fmt
from tui.adapter import REHYDRATING, BackupRef, DestinationView, ServerView, server_refs
from tui.messages import OpenBackup, ask_now
from tui.screens import logical
from tui.screens.backup_actions import (
    BACKUP_ACTIONS,
    UNLOCK,
    BackupActions,
    backup_action_allowed,
    encryption_note,
    unlock_allowed,
)
from tui.screens.base import FILTER_BINDING, FilteredScreen
from tui.state import ConsoleState
from tui.widgets.keybar import KeyBar
from tui.widgets.nav import NavTree
from tui.widgets.table import Col, ResponsiveTable
from tui.widgets.text import StaticText, same_key
from tui.widgets.topbar import TopBar

#: an ID and a letter (`20261206T233031L`); as wide as the rows' backup_key_parts need
BACKUP_WIDTH = 16
BACKUP_COLUMNS = (
    Col("server", "SERVER", 8, min_width=64),
    Col("backup", "BACKUP", BACKUP_WIDTH, flex=True),
    Col("status", "STATUS", 7),
    Col("kind", "KIND", 7, min_width=76),
    # the archive tier (an archived backup is restored only after rehydration): before TOOK,
    # so that a table too narrow for both drops TOOK first
    Col("tier", "TIER", 7, min_width=86),
    # what a backup's ID already says (its begin time): the first to go when IDs under a
    # chain's tree or marked `enc` need the room
    Col("begin", "BEGIN", 11, min_width=1),
    Col("took", "TOOK", 6, min_width=88, right=True),
    Col("size", "STORED", 9, right=True),
    Col("data", "DATA", 9, min_width=100, right=True),
    # how many second copies it has (the summary names where): on a wide terminal only
    Col("copies", "COPIES", 6, min_width=106, right=True),
    Col("wal", "WAL", 17, min_width=112),
)

STATUS_STYLE = {DONE: "bold green", FAILED: "bold red"}
TIER_STYLE = {STANDARD: "dim", ARCHIVE: "bold blue", REHYDRATING: "bold yellow"}
#: the TIER column's words (the summary says them whole)
TIER_SHORT = {STANDARD: "std", REHYDRATING: "rehydr"}

#: cells of a destination's row that are not its name: expander, border, scrollbar
TREE_CHROME = 4
#: the tree's width before the first layout (labels are redone on resize)
TREE_WIDTH_BEFORE_LAYOUT = 27

#: keys that move the tree's cursor (the operator chose where to look)
TREE_MOVES = frozenset(
    {"up", "down", "home", "end", "pageup", "pagedown", "left", "right", "j", "k", "g", "G"}
)

#: tree node data: ("destination", label) or ("server", label, server name)
NodeData = tuple[str, ...]


def relabel(node: TreeNode[NodeData], label: Text) -> None:
    """Set a tree line's label unless it already reads so (each set redraws the tree)."""
    if same_key(node.label) != same_key(label):
        node.set_label(label)


def backup_label(info: BackupInfo) -> str:
    return f"{info.backup_id} {info.backup_name}" if info.backup_name else info.backup_id


def took(info: BackupInfo) -> float | None:
    if info.begin_time and info.end_time:
        return (info.end_time - info.begin_time).total_seconds()
    return None


def stored_size(info: BackupInfo, listed: int | None = None) -> int | None:
    """What the backup occupies in the store: as listed, else backup.info's size."""
    if listed is not None:
        return listed
    return info.size if info.size is not None else info.deduplicated_size


#: the KIND column's words (the summary and the backup screen say them whole)
KIND_SHORT = {INCREMENTAL: "incr", DIFFERENTIAL: "diff"}


def kind(ref: BackupRef) -> str:
    if ref.logical is not None:
        return logical.KIND
    return KIND_SHORT.get(ref.kind, ref.kind)


def backup_cells(ref: BackupRef) -> dict[str, Text]:
    info, stored = ref.info, ref.stored
    wal = "-"
    if info.begin_wal and info.end_wal:
        wal = f"{fmt.wal_short(info.begin_wal)}..{fmt.wal_short(info.end_wal)}"
    return {
        "server": Text(ref.server),
        # what must be read whole first (the table is as wide as it needs), the name last
        "backup": Text.assemble(
            *backup_key_parts(ref), f" {info.backup_name}" if info.backup_name else ""
        ),
        "status": Text(info.status, style=STATUS_STYLE.get(info.status, "yellow")),
        "kind": Text(kind(ref)),
        "begin": Text(fmt.short_date_time(info.begin_time)),
        "took": Text(fmt.duration(took(info)), justify="right"),
        "size": Text(fmt.size(stored_size(info, stored)), justify="right"),
        "data": Text(fmt.size(info.cluster_size), justify="right"),
        "tier": Text(TIER_SHORT.get(ref.tier, ref.tier), style=TIER_STYLE.get(ref.tier, "")),
        "copies": Text(str(len(ref.copies)) if ref.copies else "-", justify="right"),
        "wal": Text(wal),
    }


def backup_key_parts(ref: BackupRef) -> tuple[tuple[str, str], ...]:
    """A row's tree prefix, ID and `enc` marker: what the BACKUP column never cuts."""
    marker = " enc" if ref.encrypted else ""
    return ((ref.tree, "dim"), (ref.info.backup_id, ""), (marker, "magenta"))


def backup_summary(ref: BackupRef, encryption: Text | None = None) -> Text:
    """Three short lines about one backup, under the table (fits 50 columns), and
    `encryption_note`'s line."""
    text = _summary(ref)
    if encryption is not None:
        text.append("\n")
        text.append_text(encryption)
    return text


def _summary(ref: BackupRef) -> Text:
    if ref.logical is not None:
        return logical_summary(ref, ref.logical)
    info, stored = ref.info, ref.stored
    text = Text()
    text.append(info.backup_id, style="bold")
    if info.backup_name:
        text.append(f" {info.backup_name}", style="bold")
    text.append("  ")
    text.append(info.status, style=STATUS_STYLE.get(info.status, "yellow"))
    text.append(f"  {info.compression or 'uncompressed'}  took {fmt.duration(took(info))}")
    _append_sealed(text, ref)
    text.append(f"began {fmt.short_date_time(info.begin_time)}  ")  # the ID has the rest
    text.append(f"stored {fmt.size(stored_size(info, stored))} of {fmt.size(info.cluster_size)}")
    if info.begin_wal and info.end_wal:  # a failed backup has none: no blank line for it
        text.append(f"\nWAL {info.begin_wal}..{info.end_wal[-8:]}  timeline {info.timeline}")
    if info.parent_backup_id:
        text.append(f"\n{ref.kind} on {info.parent_backup_id}")
    if ref.tier != STANDARD:
        note = (
            "rehydrating: a rehydrate job is bringing it back"
            if ref.tier == REHYDRATING
            else "in the archive tier: rehydrate before a restore"
        )
        text.append(f"\n{note}", style=TIER_STYLE[ref.tier])
    if info.error:
        text.append(f"\nerror: {info.error}", style="red")
    _append_copies(text, ref)
    return text


def _append_sealed(text: Text, ref: BackupRef) -> None:
    """The first line's end: `encrypted` (the table's `enc` needs a wide terminal), newline."""
    if ref.encrypted:
        text.append("  encrypted", style="magenta")
    text.append("\n")


def _append_copies(text: Text, ref: BackupRef) -> None:
    """`copies in URL, URL`: where the backup has second copies (`pgvault copy`)."""
    if ref.copies:
        text.append("\ncopies in ", style="dim")
        text.append(", ".join(ref.copies))


def logical_summary(ref: BackupRef, manifest: LogicalManifest) -> Text:
    """A logical backup in three short lines: its kind, what it holds, when."""
    info = ref.info
    text = Text()
    text.append(backup_label(info), style="bold")
    text.append("  ")
    text.append(info.status, style=STATUS_STYLE.get(info.status, "yellow"))
    text.append(f"  {logical.KIND}")
    _append_sealed(text, ref)
    if manifest.status in logical.UNKNOWN:
        text.append(f"{logical.holds(manifest)}\n{fmt.size(ref.stored)} stored; ")
        text.append(info.error or "", style="yellow")
        return text
    text.append(f"{logical.holds(manifest)}  {info.compression or 'uncompressed'}  ")
    text.append(f"{fmt.size(ref.stored)} of {fmt.size(info.cluster_size)}\n")
    text.append(f"began {fmt.short_date_time(info.begin_time)}  took {fmt.duration(took(info))}")
    _append_copies(text, ref)
    return text


class CatalogScreen(BackupActions, FilteredScreen):
    """Destinations -> servers in a tree; backups of the highlighted one in a table."""

    VIEW = "catalog"
    HELP_TITLE = "Catalog"
    HELP_TEXT = (
        "The destinations this console browses: the default local directory, the demo's, and "
        "every URL given on the command line (`pgvault s3://bucket/prefix ...`). Each lists its"
        " servers and their backups, newest first, read from backup.info (catalogs barman-cloud"
        " wrote too), each incremental under its parent (KIND incr, diff for a differential; "
        "enter shows the chain a restore reads), and its logical backups (KIND logical: pg_dump"
        " archives of databases or tables). COPIES (on a wide terminal) counts its second "
        "copies (`pgvault copy`; the summary says where). TIER (on a wide terminal too) is std "
        "(standard), archive (moved to the archive tier by a policy: rehydrate before "
        "restoring) or rehydr (a rehydrate job is bringing it back). enter on a backup shows "
        "what it holds: databases, tables and sizes recorded at backup time (row estimates for "
        "a logical one), and whether its WAL is all archived. r restores a DONE backup (or "
        "recovers to a point in time) into a directory, or a logical one into a running server;"
        " v verifies a physical backup, D deletes it; each runs as a job on the jobs view. "
        "An encrypted backup (enc after its ID) shows its contents and is restored or "
        "verified once its server is unlocked: u asks for the passphrase (not shown) or an "
        "age identity file; the keys stay in this console's memory and go to the jobs it "
        "starts, never to the job store or a log."
    )

    BINDINGS = [
        # On the backups table, as the App reads it (as `r`): a backup's screen, and a locked
        # one's unlock form over it, get the keys typed with it, not the table. On the tree,
        # `can` leaves `enter` to the tree (it moves to the backups table).
        Binding("enter", "open", "Open", key_display="enter", id="backup.open", priority=True),
        *BACKUP_ACTIONS,
        UNLOCK,
        Binding("tab", "switch_pane", "Pane", key_display="tab", show=False, id="pane.switch"),
        FILTER_BINDING,
        Binding("escape", "clear_filter", "Clear filter", show=False, id="back"),
    ]

    def __init__(self, state: ConsoleState) -> None:
        super().__init__(state)
        self._destination_nodes: dict[str, TreeNode[NodeData]] = {}
        self._server_nodes: dict[tuple[str, str], TreeNode[NodeData]] = {}
        self.selection: NodeData | None = None
        self._navigated = False
        self._rows: dict[str, BackupRef] = {}
        self._keys_for: object = ()  # what the shown keys were set for (() before any)

    def compose(self) -> ComposeResult:
        yield TopBar(self.state, self.VIEW)
        with Horizontal(id="catalog-body"):
            tree: NavTree[NodeData] = NavTree("destinations", id="destinations")
            tree.show_root = False
            tree.auto_expand = False
            tree.guide_depth = 2
            yield tree
            with Vertical(id="catalog-right"):
                # The highlighted destination whole: the tree has room for its end only.
                yield StaticText("", id="catalog-where")
                yield ResponsiveTable(BACKUP_COLUMNS, id="backups")
                yield StaticText("", id="catalog-empty")
                yield StaticText("", id="backup-summary")
        yield Input(placeholder="filter backups: words to match (esc clears)", id="filter")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.catalog_changed()
        self.query_one("#destinations", Tree).focus()
        # Once laid out, the tree's width is known: labels cut to it, not to a guess.
        self.call_after_refresh(self.catalog_changed)

    def on_screen_resume(self, event: ScreenResume) -> None:
        self.catalog_changed()

    def on_resize(self, event: Resize) -> None:
        self.catalog_changed()

    # ---- the tree --------------------------------------------------------------------------

    def catalog_changed(self) -> None:
        tree: Tree[NodeData] = self.query_one("#destinations", Tree)
        for label, view in self.state.destinations.items():
            node = self._destination_nodes.get(label)
            text = self.destination_label(view)
            if node is None:
                node = tree.root.add(text, data=("destination", label), expand=True)
                self._destination_nodes[label] = node
            else:
                relabel(node, text)
            for server in view.servers:
                key = (label, server.name)
                server_text = Text(server.name)
                count = len(server.backups) + len(server.logical)
                server_text.append(f" {count}" if not server.error else " !", style="dim")
                existing = self._server_nodes.get(key)
                if existing is None:
                    self._server_nodes[key] = node.add_leaf(
                        server_text, data=("server", label, server.name)
                    )
                else:
                    relabel(existing, server_text)
            names = {s.name for s in view.servers}
            for (dest, name), leaf in list(self._server_nodes.items()):
                if dest == label and name not in names and view.loaded and not view.loading:
                    leaf.remove()
                    del self._server_nodes[(dest, name)]
        if not self._navigated and tree.root.children:
            # Until the operator moves, follow the first server as listings arrive.
            first = self._first_server_node() or tree.root.children[0]
            if tree.cursor_node is not first:
                tree.move_cursor(first)
            self.selection = first.data
        self.show_backups()

    def _first_server_node(self) -> TreeNode[NodeData] | None:
        for node in self._server_nodes.values():
            return node
        return None

    def destination_label(self, view: DestinationView) -> Text:
        tree = self.query_one("#destinations", Tree)
        suffix = Text()
        if view.demo:
            suffix.append(" demo", style="dim")
        if view.loading and not view.loaded:
            suffix.append(" ...", style="dim")
        elif view.error:
            suffix.append(" !", style="bold red")
        # The row: the expander (2 cells), the label, its suffix; the border and scrollbar.
        width = tree.size.width or TREE_WIDTH_BEFORE_LAYOUT
        room = max(12, width - TREE_CHROME - len(suffix.plain))
        if view.label.startswith("file://"):
            # A directory reads by its end; a bucket by its start.
            text = Text(fmt.cut_left(view.label.removeprefix("file://"), room))
        else:
            text = Text(fmt.cut(view.label, room))
        return text + suffix

    def on_key(self, event: Key) -> None:
        # Only the operator's own moves stop the tree following the first server: the tree
        # also highlights its first line by itself when listings arrive, at any moment.
        if event.key in TREE_MOVES and self.query_one("#destinations", Tree).has_focus:
            self._navigated = True

    def on_click(self, event: Click) -> None:
        if event.widget is self.query_one("#destinations", Tree):
            self._navigated = True

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[NodeData]) -> None:
        if not self._navigated:
            first = self._first_server_node()
            if first is not None and event.node is not first:
                event.node.tree.move_cursor(first)
                return
        self.selection = event.node.data
        self.show_backups()

    def on_tree_node_selected(self, event: Tree.NodeSelected[NodeData]) -> None:
        self.query_one("#backups", ResponsiveTable).focus()

    # ---- the table -------------------------------------------------------------------------

    def selected_destination(self) -> DestinationView | None:
        if not self.selection:
            return None
        return self.state.destinations.get(self.selection[1])

    def show_backups(self) -> None:
        table = self.query_one("#backups", ResponsiveTable)
        empty = self.query_one("#catalog-empty", Static)
        view = self.selected_destination()
        rows: list[tuple[str, dict[str, Text]]] = []
        self._rows = {}
        message = Text()
        if view is None:
            message.append("No destination.", style="dim")
        else:
            servers = view.servers
            if self.selection and self.selection[0] == "server":
                servers = tuple(s for s in servers if s.name == self.selection[2])
            for server in servers:
                rehydrating = self.state.rehydrating(view.label, server.name)
                for ref in server_refs(view, server, rehydrating):
                    if self.filter_terms and not self._matches(ref):
                        continue
                    key = f"{server.name}/{ref.info.backup_id}"
                    rows.append((key, backup_cells(ref)))
                    self._rows[key] = ref
            message = self._listing_note(view, servers, bool(rows))
        widest = max(
            (sum(len(part) for part, _ in backup_key_parts(ref)) for ref in self._rows.values()),
            default=0,
        )
        table.fit_column("backup", max(BACKUP_WIDTH, widest))
        table.sync(rows)
        table.display = bool(rows)
        empty.display = not rows
        empty.update(message)
        self.query_one("#catalog-where", Static).update(self._where(view))
        self.show_summary()

    def _where(self, view: DestinationView | None) -> Text:
        """'file:///var/backups · pg1': what the table lists, named in full."""
        if view is None:
            return Text()
        text = Text(view.label, style="bold")
        if self.selection and self.selection[0] == "server":
            text.append(f" · {self.selection[2]}")
        return text

    def _listing_note(
        self, view: DestinationView, servers: tuple[ServerView, ...], any_rows: bool
    ) -> Text:
        """What stands in for the table: the listing's error, its progress, or why it is empty."""
        message = Text()
        if view.error:
            message.append(f"{view.label}\n", style="bold")
            message.append(f"cannot list it: {view.error}", style="red")
        elif view.loading and not view.loaded:
            message.append(f"listing {view.label} ...", style="dim")
        elif not any_rows:
            message.append(f"{view.label}\n\n", style="bold")
            if self.filter_terms:
                message.append("No backup matches the filter; esc clears it.")
            else:
                message.append("No backups here yet. ")
                if not self.state.read_only:
                    message.append("n", style="bold reverse")
                    message.append(" starts one.")
            errors = [f"{s.name}: {s.error}" for s in servers if s.error]
            if errors:
                message.append("\n" + "\n".join(errors), style="red")
        return message

    def _matches(self, ref: BackupRef) -> bool:
        info = ref.info
        holds = logical.holds(ref.logical) if ref.logical is not None else ""
        haystack = " ".join(
            part or ""
            for part in (
                ref.server,
                info.backup_id,
                info.backup_name,
                info.status,
                info.compression,
                kind(ref),
                holds,
                "encrypted" if ref.encrypted else "",
            )
        ).lower()
        return all(term in haystack for term in self.filter_terms)

    def current_backup(self) -> BackupRef | None:
        """The backup under the table's cursor."""
        table = self.query_one("#backups", ResponsiveTable)
        key = table.current_key if table.display else None
        return self._rows.get(key) if key else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_summary()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def show_summary(self) -> None:
        summary = self.query_one("#backup-summary", Static)
        ref = self.current_backup()
        # The backup actions (`can`) depend on the selected backup's status and kind, and on
        # whether it is encrypted and unlocked.
        keys = None if ref is None else (ref.info.status, ref.logical is None, self._unlock(ref))
        if keys != self._keys_for:
            self._keys_for = keys
            self.refresh_bindings()
        if ref is None:
            summary.update("")
            summary.display = False
            return
        summary.display = True
        summary.update(backup_summary(ref, encryption_note(self.state, ref)))

    def _unlock(self, ref: BackupRef | None) -> bool:
        return unlock_allowed(self.state, ref)

    def keys_changed(self) -> None:
        self.show_backups()

    # ---- actions ---------------------------------------------------------------------------

    def can(self, action: str) -> bool | None:
        if action == "open":
            table = self.query_one("#backups", ResponsiveTable)
            return table.has_focus and self.current_backup() is not None
        if action == "unlock":
            return self._unlock(self.current_backup())
        return backup_action_allowed(action, self.current_backup())

    def refilter(self) -> None:
        self.show_backups()

    def filtered_table(self) -> Widget:
        return self.query_one("#backups", ResponsiveTable)

    def action_open(self) -> None:
        ref = self.current_backup()
        if ref is not None:
            ask_now(self, OpenBackup(ref))

    def action_switch_pane(self) -> None:
        tree = self.query_one("#destinations", Tree)
        table = self.query_one("#backups", ResponsiveTable)
        if tree.has_focus and table.display:
            table.focus()
        else:
            tree.focus()
