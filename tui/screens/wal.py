"""View 3: a server's WAL archive: what is archived, where the holes are, what each backup has."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import ScreenResume
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from core.catalog.browse import WalArchive
from tui import fmt
from tui.adapter import load_wal
from tui.messages import RepairWal, ask_now
from tui.screens.base import ConsoleScreen
from tui.state import ConsoleState
from tui.tasks import Tasks
from tui.widgets.keybar import KeyBar
from tui.widgets.nav import NavOptionList
from tui.widgets.table import Col, ResponsiveTable
from tui.widgets.topbar import TopBar

RANGE_COLUMNS = (
    Col("timeline", "TL", 3, right=True),
    Col("first", "FROM", 24),
    Col("last", "TO", 24, min_width=60),
    Col("segments", "SEGMENTS", 8, right=True),
    Col("state", "STATE", 8, flex=True),
)
COVERAGE_COLUMNS = (
    Col("backup", "BACKUP", 15),
    Col("state", "WAL", 8),
    Col("until", "RECOVERABLE UNTIL", 24, flex=True),
)


def archive_summary(server: str, label: str, archive: WalArchive) -> Text:
    text = Text()
    text.append(f"{server}", style="bold")
    text.append(f" in {label}\n")
    if not archive.segments:
        text.append("no WAL archived yet", style="yellow")
        return text
    text.append(f"{archive.segments} segments")
    text.append(f" ({fmt.size(archive.segments * archive.segment_size)} of WAL)")
    timelines = ", ".join(str(t) for t in archive.timelines)
    text.append(f"  timeline{'s' if len(archive.timelines) > 1 else ''} {timelines}")
    if archive.histories:
        text.append(f"  {len(archive.histories)} history file(s)")
    text.append("\n")
    text.append(f"oldest {archive.oldest}\nnewest {archive.newest}\n")
    if archive.gaps:
        missing = sum(g.segments for g in archive.gaps)
        text.append(f"{len(archive.gaps)} gap(s): {missing} segment(s) missing", style="bold red")
        cut = sorted({b for g in archive.gaps for b in g.backups})
        if cut:
            text.append(f"; cuts {len(cut)} backup(s)", style="red")
    else:
        text.append("no gaps", style="green")
    if archive.partials:
        text.append(f"  {archive.partials} .partial file(s)", style="dim")
    return text


def range_rows(archive: WalArchive) -> list[tuple[str, dict[str, Text]]]:
    """Archived stretches and the gaps between them, in WAL order."""
    items: list[tuple[int, str, dict[str, Text]]] = []
    for index, stretch in enumerate(archive.stretches):
        items.append(
            (
                stretch.timeline,
                stretch.first,
                {
                    "timeline": Text(str(stretch.timeline), justify="right"),
                    "first": Text(stretch.first),
                    "last": Text(stretch.last),
                    "segments": Text(str(stretch.segments), justify="right"),
                    "state": Text("archived", style="green"),
                    "key": Text(f"s{index}"),
                },
            )
        )
    for index, gap in enumerate(archive.gaps):
        items.append(
            (
                gap.timeline,
                gap.first_missing,
                {
                    "timeline": Text(str(gap.timeline), justify="right"),
                    "first": Text(gap.first_missing, style="red"),
                    "last": Text(gap.last_missing, style="red"),
                    "segments": Text(str(gap.segments), justify="right", style="red"),
                    "state": Text("MISSING", style="bold red"),
                    "key": Text(f"g{index}"),
                },
            )
        )
    items.sort(key=lambda item: (item[0], item[1]))
    return [(cells["key"].plain, cells) for _, _, cells in items]


def coverage_rows(archive: WalArchive) -> list[tuple[str, dict[str, Text]]]:
    rows = []
    for coverage in reversed(archive.coverage):
        if coverage.missing:
            state = Text("MISSING", style="bold red")
        elif coverage.gaps_after:
            state = Text("PITR gap", style="yellow")
        else:
            state = Text("complete", style="green")
        until = coverage.recoverable_until or "-"
        rows.append(
            (
                coverage.backup_id,
                {"backup": Text(coverage.backup_id), "state": state, "until": Text(until)},
            )
        )
    return rows


class WalScreen(ConsoleScreen):
    """Servers on the left; the highlighted one's archive on the right."""

    VIEW = "wal"
    HELP_TITLE = "WAL archive"
    HELP_TEXT = (
        "Every server of every destination, and its WAL archive: the stretches of "
        "consecutive segments per timeline and the holes between them, and for every DONE "
        "backup whether the archive holds all the WAL it needs and how far point-in-time "
        "recovery can go from it (the check `pgvault --batch check-wal-archive --gaps` makes). "
        "`A` repairs the gaps: a wal-repair job archives again every missing segment the "
        "server still holds in its pg_wal (`check-wal-archive --repair`)."
    )

    BINDINGS = [
        Binding("tab", "switch_pane", "Pane", key_display="tab", id="pane.switch"),
        # priority, as the catalog's `r`: the form opens as the App reads the key
        Binding("A", "repair_wal", "Repair gaps", id="wal.repair", priority=True),
    ]

    def __init__(self, state: ConsoleState, tasks: Tasks) -> None:
        super().__init__(state)
        self.tasks = tasks
        self.archives: dict[str, WalArchive] = {}
        self.errors: dict[str, str] = {}
        self._servers: list[tuple[str, str, str]] = []  # (option id, destination label, server)
        self.current: str | None = None

    def compose(self) -> ComposeResult:
        yield TopBar(self.state, self.VIEW)
        with Horizontal(id="wal-body"):
            yield NavOptionList(id="wal-servers")
            with Vertical(id="wal-right"):
                yield Static("", id="wal-summary")
                yield ResponsiveTable(RANGE_COLUMNS, id="wal-ranges", openable=False)
                yield ResponsiveTable(COVERAGE_COLUMNS, id="wal-coverage", openable=False)
        yield KeyBar()

    def on_mount(self) -> None:
        self.catalog_changed()
        self.query_one("#wal-servers", OptionList).focus()

    def on_screen_resume(self, event: ScreenResume) -> None:
        self.catalog_changed()

    def forget_listings(self) -> None:
        self.archives.clear()
        self.errors.clear()

    def catalog_changed(self) -> None:
        servers = []
        for label, view in self.state.destinations.items():
            for server in view.servers:
                servers.append((f"{label}|{server.name}", label, server.name))
        options = self.query_one("#wal-servers", OptionList)
        if servers != self._servers:
            highlighted = self.current
            self._servers = servers
            options.clear_options()
            for option_id, label, name in servers:
                prompt = Text(fmt.cut(name, 20), style="bold")
                where = label.removeprefix("file://")
                short = fmt.cut_left(where, 20) if where != label else fmt.cut(label, 20)
                prompt.append(f"\n{short}", style="dim")
                options.add_option(Option(prompt, id=option_id))
            if servers:
                ids = [s[0] for s in servers]
                options.highlighted = ids.index(highlighted) if highlighted in ids else 0
        if not servers:
            self.query_one("#wal-summary", Static).update(
                Text("No servers in any destination yet.", style="dim")
            )
        elif self.current:
            self.load(self.current)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self.current = event.option.id
            self.show(event.option.id)
            self.load(event.option.id)

    def load(self, option_id: str) -> None:
        label, _, name = option_id.partition("|")
        view = self.state.destinations.get(label)
        server = view.server(name) if view else None
        if view is None or server is None:
            return
        backups = list(server.backups)
        url = view.url

        def done(archive: WalArchive) -> None:
            self.archives[option_id] = archive
            self.errors.pop(option_id, None)
            if self.is_attached and self.current == option_id:
                self.show(option_id)

        self.tasks.run(
            lambda: load_wal(url, name, backups),
            done,
            f"listing the WAL archive of {name}",
            group="wal",
            exclusive=True,
        )

    def show(self, option_id: str) -> None:
        label, _, name = option_id.partition("|")
        summary = self.query_one("#wal-summary", Static)
        ranges = self.query_one("#wal-ranges", ResponsiveTable)
        coverage = self.query_one("#wal-coverage", ResponsiveTable)
        archive = self.archives.get(option_id)
        if archive is None:
            summary.update(Text(f"{name}: listing the WAL archive ...", style="dim"))
            ranges.sync([])
            coverage.sync([])
            return
        summary.update(archive_summary(name, label, archive))
        self.refresh_bindings()  # `A` is enabled only while the archive has gaps
        ranges.sync(range_rows(archive))
        coverage.sync(coverage_rows(archive))
        coverage.border_title = "backups and their WAL"

    def can(self, action: str) -> bool | None:
        if action != "repair_wal":
            return True
        archive = self.archives.get(self.current or "")
        return True if archive is not None and archive.gaps else None

    def action_repair_wal(self) -> None:
        option_id = self.current
        archive = self.archives.get(option_id or "")
        if option_id is None or archive is None or not archive.gaps:
            return
        label, _, name = option_id.partition("|")
        view = self.state.destinations.get(label)
        if view is not None:
            ask_now(self, RepairWal(view.url, label, name))

    def action_switch_pane(self) -> None:
        order = ["#wal-servers", "#wal-ranges", "#wal-coverage"]
        focused = self.focused
        current = next((i for i, sel in enumerate(order) if focused is self.query_one(sel)), -1)
        self.query_one(order[(current + 1) % len(order)]).focus()
