"""View 4: protection: every backup instance of every vault this host knows, with its health.

Read from the vaults' destinations in a thread (core.protection.status); the highlighted
instance's policy is shown in plain words below the table. A vault whose state cannot be
read is one row, health `unavailable`, with the reason below, as `status` shows it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import ScreenResume
from textual.widgets import DataTable, Static

from core.protection.model import ProtectionState, SecondaryRetention
from core.protection.status import UNAVAILABLE, Health, InstanceStatus, StatusReport
from tui.messages import ResumeProtection, StopProtection
from tui.screens.base import ConsoleScreen
from tui.state import ConsoleState
from tui.tasks import Tasks
from tui.widgets.keybar import KeyBar
from tui.widgets.table import Col, ResponsiveTable
from tui.widgets.topbar import TopBar

COLUMNS = (
    Col("instance", "INSTANCE", 12),
    Col("health", "HEALTH", len(UNAVAILABLE)),  # its longest word: healthy ... unavailable
    Col("policy", "POLICY", 10),
    Col("last", "LAST SUCCESS", 12),
    Col("next", "NEXT DUE", 11),
    Col("rpo", "RPO", 7, right=True),
    Col("vault", "VAULT", 10, min_width=100, flex=True),
)
#: seconds between two readings of the vaults while the view is shown (RPO, health and next
#: due move with the clock; the agent and other hosts change the runs behind the console)
REFRESH_SECONDS = 30.0
HEALTH_STYLE = {Health.HEALTHY: "green", Health.WARNING: "yellow", Health.CRITICAL: "bold red"}


def age(delta: timedelta | None) -> str:
    """An age as 3d04h, 5h02m or 42s."""
    if delta is None:
        return "-"
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{rest // 60:02d}m"
    return f"{rest // 60}m{rest % 60:02d}s" if rest >= 60 else f"{rest}s"  # noqa: PLR2004 - a minute


def when(moment: datetime | None) -> str:
    """Month, day and UTC time: the year is the detail an operator needs least here."""
    return moment.astimezone(UTC).strftime("%m-%d %H:%M") if moment else "-"


def status_rows(found: list[InstanceStatus]) -> list[tuple[str, dict[str, Text]]]:
    rows = []
    for item in found:
        last = item.last_success
        key = f"{item.vault}|{item.instance.name}"
        rows.append(
            (
                key,
                {
                    "instance": Text(item.instance.name, style="bold"),
                    "health": Text(str(item.health), style=HEALTH_STYLE[item.health]),
                    "policy": Text(item.instance.policy_name),
                    "last": Text(when((last.finished or last.slot) if last else None)),
                    "next": Text(when(item.next_due)),
                    "rpo": Text(age(item.rpo), justify="right"),
                    "vault": Text(item.vault, style="dim"),
                },
            )
        )
    return rows


def unavailable_rows(report: StatusReport) -> list[tuple[str, dict[str, Text]]]:
    """One row per vault that could not be read: nothing is known of its instances."""
    dash = Text("-")
    return [
        (
            f"{gone.vault}|",
            {
                "instance": Text("(all)", style="dim"),
                "health": Text(UNAVAILABLE, style="bold red"),
                "policy": dash,
                "last": dash,
                "next": dash,
                "rpo": Text("-", justify="right"),
                "vault": Text(gone.vault, style="dim"),
            },
        )
        for gone in report.unavailable
    ]


def detail(item: InstanceStatus) -> Text:
    """The highlighted instance: its policy in words and why it has its health."""
    text = Text()
    text.append(f"{item.instance.name}", style="bold")
    text.append(f" ({item.instance.server_name} in vault {item.vault}): ")
    text.append(str(item.health), style=HEALTH_STYLE[item.health])
    text.append(f" - {item.reason}\n")
    if item.last_error is not None:
        text.append("the agent's last pass failed ", style="bold red")
        text.append(f"({when(item.last_error.at)}): {item.last_error.error}\n")
    text.append(f"{item.instance.policy_name}: ", style="bold")
    text.append(item.policy_words)
    secondary = item.instance.secondary_destination
    if secondary:
        text.append("\ncopies each backup to ", style="bold")
        text.append(secondary)
        if item.instance.secondary_retention is SecondaryRetention.FOLLOW:
            text.append(" (retention's deletions here are repeated there)")
        else:
            text.append(" (kept there when retention deletes the backup here)")
    return text


class ProtectionScreen(ConsoleScreen):
    """Backup instances, their health, last success, next slot and RPO."""

    VIEW = "protection"
    HELP_TITLE = "Protection"
    HELP_TEXT = (
        "Every backup instance of every vault this host knows (`pgvault --batch vault list`): "
        "its health from thresholds derived from its schedule, the last successful backup, "
        "the next slot and the RPO (the age of the newest restorable point: the last "
        "backup's end, or the newest WAL archived after it). The agent "
        "(`pgvault --batch agent`) takes the backups. `s` stops protecting the highlighted "
        "instance (the agent skips it; its backups stay), `r` resumes it."
    )

    BINDINGS = [
        Binding("s", "stop_protection", "Stop", id="protection.stop"),
        Binding("r", "resume_protection", "Resume", id="protection.resume"),
    ]

    def __init__(self, state: ConsoleState, tasks: Tasks) -> None:
        super().__init__(state)
        self.tasks = tasks
        self.found: dict[str, InstanceStatus] = {}
        #: the vaults that could not be read, by row key, with why
        self.gone: dict[str, str] = {}
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield TopBar(self.state, self.VIEW)
        yield ResponsiveTable(COLUMNS, id="protection-table", openable=False)
        yield Static("", id="protection-detail")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#protection-detail", Static).update(
            Text("reading the vaults ...", style="dim")
        )
        self.load()
        self.query_one("#protection-table", ResponsiveTable).focus()
        self.set_interval(REFRESH_SECONDS, self.refresh_if_shown)

    def on_screen_resume(self, event: ScreenResume) -> None:
        self.load()

    def refresh_if_shown(self) -> None:
        """Read the vaults again while this view is on screen (not under a form, not frozen)."""
        if self.is_current and not self.state.frozen:
            self.load()

    def forget_listings(self) -> None:
        self.load()

    def load(self) -> None:
        from core.protection.status import status_report

        state_dir = self.state.config.state_dir
        now = datetime.fromtimestamp(self.state.config.clock(), UTC)
        self.tasks.run(
            lambda: status_report(state_dir, None, now),
            self.loaded,
            "reading the vaults' protection status",
            group="protection",
            exclusive=True,
        )

    def loaded(self, report: StatusReport) -> None:
        found = list(report.instances)
        self.found = {f"{item.vault}|{item.instance.name}": item for item in found}
        self.gone = {f"{gone.vault}|": gone.reason for gone in report.unavailable}
        if not self.is_attached:
            return
        table = self.query_one("#protection-table", ResponsiveTable)
        table.sync(unavailable_rows(report) + status_rows(found))
        if not found and not self.gone:
            self.query_one("#protection-detail", Static).update(
                Text(
                    "No backup instances: create a vault, a policy and an instance with "
                    "`pgvault --batch vault|policy|backup-instance create`.",
                    style="dim",
                )
            )
        else:
            self.show(table.current_key)
        self.refresh_bindings()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show(event.row_key.value)
        self.refresh_bindings()

    def current(self) -> InstanceStatus | None:
        key = self.query_one("#protection-table", ResponsiveTable).current_key
        return self.found.get(key or "")

    def can(self, action: str) -> bool | None:
        item = self.current()
        if action == "stop_protection":
            return item is not None and item.instance.state is ProtectionState.CONFIGURED
        if action == "resume_protection":
            return item is not None and item.instance.state is ProtectionState.STOPPED
        return True

    def action_stop_protection(self) -> None:
        item = self.current()
        if item is not None:
            self.post_message(StopProtection(item.vault, item.instance.name))

    def action_resume_protection(self) -> None:
        item = self.current()
        if item is not None:
            self.post_message(ResumeProtection(item.vault, item.instance.name))

    def show(self, key: str | None) -> None:
        item = self.found.get(key or "")
        shown = self.query_one("#protection-detail", Static)
        if item is not None:
            shown.update(detail(item))
        elif key in self.gone:
            text = Text(f"vault {key.rstrip('|')}: ", style="bold")
            text.append(UNAVAILABLE, style="bold red")
            text.append(f" - {self.gone[key]}")
            shown.update(text)
