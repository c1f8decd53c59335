"""One job, in full: progress and ETA, its bandwidth over time, the facts, the log tail."""

from __future__ import annotations

import logging
import threading

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import ScreenResume, ScreenSuspend
from textual.message import Message
from textual.widgets import RichLog

from core.errors import PgvaultError
from core.jobs import Job, JobState, JobStore, LogLine
from core.progress import RateSample
from tui import fmt
from tui.adapter import describe_error, job_backup_id
from tui.job_words import job_error
from tui.screens.base import ConsoleScreen
from tui.screens.jobs import BAR_COLOR, JOB_ACTIONS, STATE_COLOR, JobActions, job_action_allowed
from tui.state import ConsoleState
from tui.widgets.bandwidth import BandwidthChart, span
from tui.widgets.keybar import KeyBar
from tui.widgets.progress import ProgressLine
from tui.widgets.text import StaticText
from tui.widgets.topbar import TopBar

POLL = 0.5
HISTORY = 3600.0  # seconds of samples kept (the store keeps one hour)
WINDOWS = (60.0, 300.0, 900.0, 3600.0)
TWO_COLUMNS = 60  # the facts' width from which they go in two columns
LEVEL_STYLE = {logging.WARNING: "yellow", logging.ERROR: "bold red", logging.CRITICAL: "bold red"}


class TailLog(RichLog):
    """A job's log, kept on its newest lines when the terminal is resized (shrunk after
    showing every line, it showed the first ones: not where a job says how it ended)."""

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)  # RichLog's: the lines written before its size was known
        if self.auto_scroll:
            self.scroll_end(animate=False, immediate=False)


class DetailData(Message):
    def __init__(
        self,
        job_id: int,
        job: Job | None,
        samples: list[RateSample],
        lines: list[LogLine],
        error: str | None,
    ) -> None:
        super().__init__()
        self.job_id = job_id  # the job polled (the screen may show another one by now)
        self.job = job
        self.samples = samples
        self.lines = lines
        self.error = error


def facts_text(job: Job, now: float, width: int, wire: float | None = None) -> Text:
    """Two columns of label/value pairs (one column when narrow); `wire` is the bytes on the
    wire per second now, beside the data rate."""
    started = job.started or job.created
    took = fmt.elapsed(job, now)
    # Two rates, each named: the data done and the bytes on the wire (compression and a
    # bandwidth cap make them differ).
    data_word, wire_word = fmt.rate_words(job.kind)
    active = not job.final
    pairs = [
        ("phase", job.phase or "-"),
        (data_word, fmt.job_rate(job, job.rate) if active else fmt.mean_rate(job)),
        ("bytes", fmt.amount(job)),
        (wire_word, fmt.job_rate(job, wire) if active and wire is not None else "-"),
        ("files", fmt.files(job)),
        ("ETA", fmt.duration(job.eta) if job.eta and active else "-"),
        ("started", f"{fmt.date_time(started)}"),
        ("elapsed" if active else "took", fmt.duration(took)),
        ("server", job.server or "-"),
    ]
    where = f"pid {job.pid} on {job.host}" if job.pid else (job.host or "-")
    pairs.append(("process", where))
    pairs.append(("backup", job_backup_id(job) or "-"))
    if job.resumed_from:
        pairs.append(("resumes", f"job {job.resumed_from}"))
    text = Text()
    column = max(24, (width - 2) // 2)
    two = width >= TWO_COLUMNS
    for index, (label, value) in enumerate(pairs):
        cell = Text()
        cell.append(f"{label:<9}", style="dim")  # "received" and a space
        cell.append(value)
        if two:
            if index % 2 == 0:
                cell.truncate(column - 1, overflow="ellipsis", pad=True)
                text.append_text(cell)
                text.append(" ")
            else:
                text.append_text(cell)
                text.append("\n")
        else:
            text.append_text(cell)
            text.append("\n")
    if job.error:
        text.append(f"{'error':<8}", style="dim")
        style = "bold red" if job.state is JobState.FAILED else "yellow"
        text.append(job_error(job), style=style)  # a form's job: in the form's words
    text.rstrip()
    return text


class JobDetailScreen(JobActions, ConsoleScreen):
    """Pushed over the jobs view with enter; esc goes back."""

    VIEW = "jobs"
    HELP_TITLE = "Job detail"
    HELP_TEXT = (
        "The chart shows the bytes per second the job moved, one sample a second (the job "
        "store keeps an hour). w changes the time window. The log is the job's own: what "
        "`pgvault --batch jobs log ID` prints."
    )

    # Below 32 rows (an 80x24 terminal) the chart gives the log three of its rows: what the
    # job says matters more there than a taller curve.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]

    BINDINGS = [
        Binding("escape", "back", "Back", key_display="esc", id="back"),
        *JOB_ACTIONS,
        Binding("w", "window", "Window", id="detail.window"),
    ]

    def __init__(self, job_id: int, state: ConsoleState) -> None:
        super().__init__(state)
        self.job_id = job_id
        self.job: Job | None = None
        self.samples: list[RateSample] = []
        self._stop = threading.Event()
        self._state: JobState | None = None
        self._seq = 0  # the last log line shown (a reopened job goes on from there)

    def compose(self) -> ComposeResult:
        yield TopBar(self.state, self.VIEW)
        yield StaticText("", id="detail-title")
        yield ProgressLine(id="detail-bar")
        yield StaticText("", id="detail-facts")
        chart = BandwidthChart(self.state.config.clock, id="detail-chart")
        chart.border_title = "bandwidth"
        yield chart
        log = TailLog(id="detail-log", max_lines=1000, wrap=True, markup=False, highlight=False)
        log.border_title = "log"
        yield log
        yield KeyBar()

    def on_mount(self) -> None:
        job = self.state.jobs.get(self.job_id)
        if job is not None:
            self.show(job)

    def show_job(self, job_id: int) -> None:
        """Show another job: the console keeps one detail screen and opens it on each job
        (composing and styling it anew cost most of `enter`)."""
        if job_id == self.job_id:
            return
        self.job_id = job_id
        self.job = None
        self.samples = []
        self._state = None
        self._seq = 0
        if not self.is_mounted:
            return
        self.query_one("#detail-log", RichLog).clear()
        self.query_one("#detail-chart", BandwidthChart).set_samples([])
        self._chart_title()
        job = self.state.jobs.get(job_id)
        if job is not None:
            self.show(job)
        else:
            self.query_one("#detail-title", StaticText).update(Text(f"job {job_id}"))

    def on_screen_resume(self, event: ScreenResume) -> None:
        # One poller while shown, for the job shown; none while the screen waits hidden.
        self._stop.set()
        self._stop = stop = threading.Event()
        job_id, after = self.job_id, self._seq
        since = self.samples[-1].at if self.samples else self.state.config.clock() - HISTORY
        self.run_worker(
            lambda: self._poll(job_id, since, after, stop),
            thread=True,
            group="detail",
            exclusive=True,
            exit_on_error=False,
        )

    def on_screen_suspend(self, event: ScreenSuspend) -> None:
        self._stop.set()

    def on_unmount(self) -> None:
        self._stop.set()

    def _poll(self, job_id: int, since: float, after: int, stop: threading.Event) -> None:
        """Thread: the job, its new samples and its new log lines, twice a second."""
        store: JobStore | None = None
        try:
            while not stop.is_set():
                try:
                    if store is None:
                        store = JobStore.open(self.state.config.state_dir)
                    job = store.get(job_id)
                    samples = store.samples(job_id, since)
                    lines = store.log_tail(job_id, limit=300, after_seq=after)
                    if samples:
                        since = samples[-1].at
                    if lines:
                        after = lines[-1].seq
                    self.post_message(DetailData(job_id, job, samples, lines, None))
                except PgvaultError as exc:
                    self.post_message(DetailData(job_id, None, [], [], str(exc)))
                except Exception as exc:
                    self.post_message(DetailData(job_id, None, [], [], describe_error(exc)))
                stop.wait(POLL)
        finally:
            if store is not None:
                store.close()

    def on_detail_data(self, message: DetailData) -> None:
        if message.job_id != self.job_id:
            return  # a read of the job shown before
        if message.error:
            self.query_one("#detail-title", StaticText).update(
                Text(f"job {self.job_id}: {message.error}", style="bold red")
            )
            return
        # A read the last poller sent as the screen was hidden may overlap the next
        # poller's first: keep only what is newer than what is shown.
        last = self.samples[-1].at if self.samples else None
        samples = [s for s in message.samples if last is None or s.at > last]
        lines = [line for line in message.lines if line.seq > self._seq]
        if samples:
            self.samples = (self.samples + samples)[-int(HISTORY) :]
            chart = self.query_one("#detail-chart", BandwidthChart)
            chart.set_samples(self.samples)
            self._chart_title()
        if lines:
            self._seq = lines[-1].seq
            log = self.query_one("#detail-log", RichLog)
            for line in lines:
                entry = Text()
                entry.append(fmt.clock_time(line.at) + " ", style="dim")
                entry.append(line.message, style=LEVEL_STYLE.get(line.level, ""))
                log.write(entry)
        if message.job is not None and not self.state.frozen:
            self.show(message.job)

    def _chart_title(self) -> None:
        chart = self.query_one("#detail-chart", BandwidthChart)
        now = self.state.config.clock()
        recent = [s.rate for s in self.samples if s.at > now - chart.window]
        window = span(chart.window)
        if recent:
            peak = max(recent)
            mean = sum(recent) / len(recent)
            chart.border_title = (
                f"on the wire, last {window}: peak {fmt.rate(peak)}, mean {fmt.rate(mean)}"
            )
        else:
            chart.border_title = f"on the wire, last {window}: no samples"

    def show(self, job: Job) -> None:
        self.job = job
        if job.state != self._state:
            self._state = job.state
            self.refresh_bindings()
        now = self.state.config.clock()
        title = Text()
        title.append(f"job {job.id} ", style="bold")
        title.append(f" {fmt.STATE_LABEL[job.state]} ", style=f"reverse {STATE_COLOR[job.state]}")
        title.append(f"  {job.description or job.kind}")
        self.query_one("#detail-title", StaticText).update(title)
        right = fmt.amount(job)
        if job.eta and not job.final:
            right += f"  ETA {fmt.duration(job.eta)}"
        self.query_one("#detail-bar", ProgressLine).set_progress(
            fmt.reached(job), right, BAR_COLOR.get(job.state, ""), job.final
        )
        facts = self.query_one("#detail-facts", StaticText)
        width = facts.content_region.width or self.size.width
        facts.update(facts_text(job, now, width, fmt.wire_now(self.samples, now)))

    # ---- actions ---------------------------------------------------------------------------

    def can(self, action: str) -> bool | None:
        allowed = job_action_allowed(self.job, action)
        return True if allowed is None else allowed

    def current_job(self) -> Job | None:
        """The job as last read (None until the first read)."""
        return self.job

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_window(self) -> None:
        chart = self.query_one("#detail-chart", BandwidthChart)
        index = WINDOWS.index(chart.window) if chart.window in WINDOWS else 0
        chart.window = WINDOWS[(index + 1) % len(WINDOWS)]
        chart.refresh()
        self._chart_title()
