"""View 1, the default: every job, live, with the selected one's progress at the bottom."""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import ScreenResume
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label, Static

from core.jobs import Job, JobState
from tui import fmt
from tui.config import AGGREGATE_WINDOW
from tui.job_words import job_error
from tui.messages import (
    CancelJob,
    JobRequest,
    OpenJob,
    PauseJob,
    ResumeJob,
    RetryJob,
    ask_now,
)
from tui.screens.base import FILTER_BINDING, FilteredScreen
from tui.state import ConsoleState
from tui.widgets.bandwidth import Sparkline
from tui.widgets.keybar import KeyBar
from tui.widgets.progress import ProgressLine
from tui.widgets.table import Cells, Col, ResponsiveTable
from tui.widgets.text import LabelText, StaticText
from tui.widgets.topbar import TopBar

PROGRESS_BAR = 8  # cells of bar in the table's progress column (then ' 100%')
#: the longest kind shown (barman-hook) fits: 80 columns show it whole
KIND_WIDTH = 11
#: kinds longer than the column, shown shorter: cut, both read "logical-" (the summary under
#: the table and the job detail say them whole, and the filter matches either)
KIND_SHORT = {"logical-backup": "lg-backup", "logical-restore": "lg-restore"}

JOB_COLUMNS = (
    Col("id", "ID", 4, right=True),
    Col("state", "STATE", fmt.STATE_WIDTH),
    Col("kind", "KIND", KIND_WIDTH),
    Col("server", "SERVER", 8, flex=True),
    Col("progress", "PROGRESS", PROGRESS_BAR + 5),
    # The data done per second (read, written or checked), not the bytes on the wire.
    Col("rate", "DATA RATE", fmt.RATE_CELL, right=True),
    Col("eta", "ETA", 6, right=True),
    Col("started", "STARTED", 11, min_width=96),
    Col("destination", "DESTINATION", 16, min_width=118, flex=True),
)

PAUSABLE = {JobState.RUNNING, JobState.PENDING}
RESUMABLE = {JobState.PAUSED, JobState.PAUSE_REQUESTED}
#: the keys that act on one job, in the jobs view and the job detail alike
JOB_ACTIONS = (
    Binding("p", "pause", "Pause", id="job.pause"),
    Binding("p", "resume", "Resume", id="job.resume"),
    Binding("C", "cancel", "Cancel", id="job.cancel"),
    # priority, as the catalog's `r`: on a locked server's backup it opens the unlock form
    Binding("r", "retry", "Retry", id="job.retry", priority=True),
)


#: retry: only backups resume; a logical one also after a cancel (it is dumped again)
RETRYABLE = {
    "backup": (JobState.FAILED,),
    "logical-backup": (JobState.FAILED, JobState.CANCELLED),
}


def job_action_allowed(job: Job | None, action: str) -> bool | None:
    """Whether a job action applies to `job` now; None for an action that is not one."""
    if action not in ("pause", "resume", "cancel", "retry"):
        return None
    if job is None:
        return False
    if action == "pause":
        return job.state in PAUSABLE
    if action == "resume":
        return job.state in RESUMABLE
    if action == "cancel":
        return not job.final and job.state is not JobState.CANCEL_REQUESTED
    return job.state in RETRYABLE.get(job.kind, ())


class _ShowsAJob(Protocol):
    def current_job(self) -> Job | None: ...
    @property
    def app(self) -> Any: ...
    def post_message(self, message: Message) -> bool: ...


def _ask(screen: _ShowsAJob, request: type[JobRequest]) -> None:
    job = screen.current_job()
    if job is not None:
        ask_now(screen, request(job))  # `r` on a locked server's backup opens a form


class JobActions:
    """The JOB_ACTIONS keys of a screen that shows one job at a time (`current_job`)."""

    def action_pause(self: _ShowsAJob) -> None:
        _ask(self, PauseJob)

    def action_resume(self: _ShowsAJob) -> None:
        _ask(self, ResumeJob)

    def action_cancel(self: _ShowsAJob) -> None:
        _ask(self, CancelJob)

    def action_retry(self: _ShowsAJob) -> None:
        _ask(self, RetryJob)


STATE_COLOR = {
    JobState.PENDING: "dim",
    JobState.RUNNING: "bold green",
    JobState.PAUSE_REQUESTED: "yellow",
    JobState.PAUSED: "bold yellow",
    JobState.CANCEL_REQUESTED: "yellow",
    JobState.CANCELLED: "dim",
    JobState.FAILED: "bold red",
    JobState.SUCCEEDED: "",
}

BAR_COLOR = {
    JobState.RUNNING: "green",
    JobState.PAUSED: "yellow",
    JobState.PAUSE_REQUESTED: "yellow",
    JobState.FAILED: "red",
    JobState.CANCELLED: "dim",
    JobState.CANCEL_REQUESTED: "yellow",
}


def job_cells(job: Job, now: float) -> dict[str, Text]:
    """One table row for a job: words and digits first, colour only repeating them."""
    fraction = fmt.reached(job)
    progress = Text(fmt.bar(fraction, PROGRESS_BAR), style=BAR_COLOR.get(job.state, ""))
    progress.append(" " + fmt.percent(fraction, job.final), style="")
    active = not job.final
    return {
        "id": Text(str(job.id), justify="right"),
        "state": Text(fmt.STATE_LABEL[job.state], style=STATE_COLOR[job.state]),
        "kind": Text(KIND_SHORT.get(job.kind, job.kind)),
        "server": Text(job.server or "-"),
        "progress": progress,
        "rate": Text(rate_cell(job), justify="right"),
        "eta": Text(fmt.duration(job.eta) if active and job.eta else "-", justify="right"),
        "started": Text(fmt.clock_time(job.started or job.created, now)),
        "destination": Text(job.destination or "-"),
    }


def rate_cell(job: Job) -> str:
    """The RATE cell: the smoothed rate while the job moves data; 'paused', '-' otherwise."""
    if job.state is JobState.PAUSED:
        return fmt.PAUSED
    return fmt.rate_cell(job.rate) if not job.final else "-"


def matches(job: Job, terms: list[str]) -> bool:
    haystack = " ".join(
        str(part)
        for part in (
            job.id,
            job.kind,
            KIND_SHORT.get(job.kind),
            job.server,
            job.state.value,
            job.destination,
            job.description,
            job.phase,
        )
        if part
    ).lower()
    return all(term in haystack for term in terms)


class JobsScreen(JobActions, FilteredScreen):
    """Jobs, newest first; the bottom panel follows the cursor."""

    VIEW = "jobs"
    HELP_TITLE = "Jobs"
    HELP_TEXT = (
        "Every backup, restore and verify runs as a job, here or from `pgvault --batch`. "
        "The list is live (three reads of the job store a second); rows are updated in "
        "place. Pause stops all reading and sending within a second and keeps the "
        "PostgreSQL backup session open; cancel aborts uploads and leaves nothing "
        "restorable; a failed backup can be resumed in a new job that reuses what was "
        "already uploaded."
    )

    BINDINGS = [
        # priority, as the catalog's `enter`: the detail opens as the App reads the key, and
        # what is typed with it (`j`, `w`, `esc`) reaches the detail, not this table
        Binding("enter", "open", "Open", key_display="enter", id="job.open", priority=True),
        *JOB_ACTIONS,
        FILTER_BINDING,
        Binding("escape", "clear_filter", "Clear filter", show=False, id="back"),
    ]

    def __init__(self, state: ConsoleState) -> None:
        super().__init__(state)
        self._selected: tuple[int, JobState] | None = None
        #: each shown job's cells, by id, with the job read and the day they were made for
        self._cells: dict[int, tuple[Job, date, Cells]] = {}

    def compose(self) -> ComposeResult:
        clock = self.state.config.clock
        yield TopBar(self.state, self.VIEW)
        with Horizontal(id="bandwidth-strip"):
            yield Label("bandwidth ", id="bandwidth-label")
            yield Sparkline(clock, AGGREGATE_WINDOW, id="sparkline")
            yield LabelText("", id="bandwidth-now")
        yield ResponsiveTable(JOB_COLUMNS, id="jobs")
        yield StaticText("", id="empty")
        yield Input(placeholder="filter jobs: words to match (esc clears)", id="filter")
        with Vertical(id="selected"):
            yield StaticText("", id="selected-title")
            yield ProgressLine(id="selected-bar")
            yield StaticText("", id="selected-facts")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.jobs_changed()
        self.bandwidth_changed()
        self.query_one("#jobs", ResponsiveTable).focus()

    def on_screen_resume(self, event: ScreenResume) -> None:
        self.jobs_changed()
        self.bandwidth_changed()

    # ---- data from the state ---------------------------------------------------------------

    @property
    def table(self) -> ResponsiveTable:
        return self.query_one("#jobs", ResponsiveTable)

    def visible_jobs(self) -> list[Job]:
        jobs = self.state.newest_first()
        if self.filter_terms:
            jobs = [j for j in jobs if matches(j, self.filter_terms)]
        return jobs

    def jobs_changed(self) -> None:
        now = self.state.config.clock()
        jobs = self.visible_jobs()
        table = self.table
        # States are CockroachDB's words, whole: the column widens for a 'cancel-requested'.
        labels = [len(fmt.STATE_LABEL[job.state]) for job in jobs]
        table.fit_column("state", max([fmt.STATE_WIDTH, *labels]))
        table.sync([(str(job.id), self._row(job, now)) for job in jobs])
        pending = self.state.pending_selection
        if pending is not None and table.select_key(str(pending)):
            self.state.pending_selection = None
        table.display = bool(jobs)
        empty = self.query_one("#empty", Static)
        empty.display = not jobs
        if not jobs:
            empty.update(self.empty_text())
        self.show_selected()

    def _row(self, job: Job, now: float) -> Cells:
        """The job's cells, made again only for a job the feed changed (three times a second
        for a running one, never for the finished ones below it) or on a new day."""
        today = date.fromtimestamp(now)
        cached = self._cells.get(job.id)
        if cached is not None and cached[0] is job and cached[1] == today:
            return cached[2]
        cells = job_cells(job, now)
        if len(self._cells) > len(self.state.jobs) * 2:
            self._cells = {}  # forget jobs that are gone
        self._cells[job.id] = (job, today, cells)
        return cells

    def empty_text(self) -> Text:
        state = self.state
        text = Text()
        if self.filter_terms:
            text.append(f"No job matches the filter {' '.join(self.filter_terms)!r}.\n")
            text.append("esc clears the filter.", style="dim")
            return text
        if not state.jobs_loaded:
            text.append("Reading the job store...", style="dim")
            return text
        text.append("No jobs yet.\n\n", style="bold")
        if state.demo_status:
            style = "bold red" if state.demo_failed else "bold"
            text.append(f"demo: {state.demo_status}\n\n", style=style)
        if state.read_only:
            text.append("This console is read-only: jobs started elsewhere appear here.\n")
        else:
            text.append("n", style="bold reverse")
            text.append(" starts a backup; ")
            text.append("pgvault --demo", style="bold")
            text.append(" opens on a throwaway PostgreSQL with a backup running.\n")
        text.append(
            "Jobs started with `pgvault --batch backup --detach` or from cron appear here too.",
            style="dim",
        )
        return text

    def demo_changed(self) -> None:
        if not self.visible_jobs():
            self.query_one("#empty", Static).update(self.empty_text())

    def bandwidth_changed(self) -> None:
        self.query_one("#sparkline", Sparkline).set_samples(self.state.bandwidth)
        # The chart's own number: bytes on the wire now, not the jobs' data rates.
        wire = fmt.wire_now(self.state.bandwidth, self.state.config.clock())
        label = f" wire {fmt.rate(wire)}" if wire else " idle"
        self.query_one("#bandwidth-now", Label).update(label)

    # ---- the selected job ------------------------------------------------------------------

    def current_job(self) -> Job | None:
        """The job under the table's cursor."""
        key = self.table.current_key if self.table.display else None
        if key is None:
            return None
        return self.state.jobs.get(int(key))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_selected()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def show_selected(self) -> None:
        job = self.current_job()
        title = self.query_one("#selected-title", Static)
        bar = self.query_one("#selected-bar", ProgressLine)
        facts = self.query_one("#selected-facts", Static)
        # The footer's keys follow the selected job's state (Pause or Resume, Cancel...).
        selected = (job.id, job.state) if job else None
        if selected != self._selected:
            self._selected = selected
            self.refresh_bindings()
        panel = self.query_one("#selected", Vertical)
        panel.display = job is not None
        if job is None:
            return
        now = self.state.config.clock()
        head = Text()
        head.append(f"job {job.id} ", style="bold")
        head.append(fmt.STATE_LABEL[job.state], style=STATE_COLOR[job.state] or "bold")
        head.append(f"  {job.description or job.kind}")
        title.update(head)
        right = fmt.amount(job)
        if job.eta and not job.final:
            right += f"  ETA {fmt.duration(job.eta)}"
        bar.set_progress(fmt.reached(job), right, BAR_COLOR.get(job.state, ""), job.final)
        line = Text()
        if job.error and job.state in (JobState.FAILED, JobState.CANCELLED):
            line.append(f"{job.state.value}: ", style=STATE_COLOR[job.state])
            line.append(job_error(job))  # a form's job: in the form's words
        else:
            parts = [f"phase {job.phase or '-'}"]
            if not job.final and job.rate > 0 and job.state is not JobState.PAUSED:
                parts.append(fmt.job_rates(job.kind, job.rate, None))
            parts.append(fmt.files(job))
            started = job.started or job.created
            parts.append(f"started {fmt.clock_time(started, now)}")
            took = fmt.elapsed(job, now)
            if took is not None:
                parts.append(("took " if job.final else "for ") + fmt.duration(took))
            line.append("  ".join(parts), style="dim" if job.final else "")
        facts.update(line)

    # ---- actions ---------------------------------------------------------------------------

    def can(self, action: str) -> bool | None:
        job = self.current_job()
        allowed = job_action_allowed(job, action)
        if allowed is not None:
            return allowed
        return job is not None or action != "open"

    def refilter(self) -> None:
        self.jobs_changed()

    def filtered_table(self) -> Widget:
        return self.table

    def action_open(self) -> None:
        _ask(self, OpenJob)
