"""The Textual console. Imported only when the console opens (never by --batch).

The app owns what every view shares: the job feed (a thread reading the job store three
times a second), the catalog listings (one thread worker per destination), the demo, and
the global keys. Views are Textual modes (1 jobs, 2 catalog, 3 WAL archive); drill-downs are
pushed screens; forms and confirmations are modal screens. Nothing slow runs on the UI
thread: `task()` runs a blocking call in a thread worker and hands its result (or a
one-line error notification) back to the UI thread.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from rich.text import Text
from textual.app import App, ScreenStackError
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from core import paths
from core.errors import PgvaultError
from core.jobs import Job, JobState, JobStore
from core.progress import RateSample
from core.secrets import redact
from tui.catalog_data import (
    BackupRef,
    DestinationView,
    describe_error,
    display_url,
    load_destination,
)
from tui.commands import ConsoleCommands
from tui.config import MUTATING, ConsoleConfig
from tui.feed import JobFeed
from tui.keymap import load_keymap
from tui.messages import BandwidthSampled, DemoProgress, FeedStatus, JobsChanged
from tui.screens.catalog import CatalogScreen
from tui.screens.jobs import JobsScreen
from tui.screens.wal import WalScreen

T = TypeVar("T")
CATALOG_REFRESH = 30.0
#: job kinds whose start or end changes a destination's catalog
CATALOG_CHANGING = frozenset(
    {"backup", "delete"}
)  # seconds between listings while a catalog view is shown
log = logging.getLogger("pgvault.console")


class PgvaultApp(App[int]):
    """The operator console."""

    TITLE = "pgvault"
    CSS_PATH = "pgvault.tcss"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    DEFAULT_MODE = "jobs"
    MODES = {"jobs": JobsScreen, "catalog": CatalogScreen, "wal": WalScreen}

    BINDINGS = [
        Binding("1", "view('jobs')", "Jobs", show=False, id="view.jobs"),
        Binding("2", "view('catalog')", "Catalog", show=False, id="view.catalog"),
        Binding("3", "view('wal')", "WAL", show=False, id="view.wal"),
        Binding("n", "new_backup", "New backup", id="job.new"),
        Binding("question_mark,f1", "help", "Help", key_display="?", id="help"),
        Binding("R,f5", "refresh", "Refresh", show=False, id="refresh"),
        Binding("Z", "freeze", "Freeze", show=False, id="freeze"),
        Binding("colon", "command_palette", "Commands", show=False, id="palette"),
        Binding("q,f10", "quit", "Quit", id="quit"),
    ]

    def __init__(self, config: ConsoleConfig) -> None:
        super().__init__()
        if self.no_color:
            self._use_readable_monochrome()
        self.config = config
        self.read_only = config.read_only
        self.jobs: dict[int, Job] = {}
        self.jobs_loaded = False
        self.bandwidth: list[RateSample] = []
        self.feed = JobFeed(cast("App[object]", self), config)
        self.feed_error: str | None = None
        self.frozen = False
        self.destinations: dict[str, DestinationView] = {}
        #: installed help screens by what they show (tui.modals.help.HelpScreen.identity)
        self._help_screens: dict[tuple[object, ...], str] = {}
        self.demo_status = ""
        self.demo_failed = False
        self.demo_job: int | None = None
        self._tasks: dict[Worker[Any], tuple[Callable[[Any], None] | None, str]] = {}
        self.pending_selection: int | None = None
        self._stale: set[str] = set()
        self._stale_timer: Timer | None = None
        self.keymap_error: str | None = None
        from core.demo import load_demo

        self.demo = load_demo()

    def _use_readable_monochrome(self) -> None:
        from textual.filter import Monochrome

        from tui.monochrome import ReadableMonochrome

        # Textual keeps its output filters in a private list; the monochrome snapshot test
        # notices if that ever changes.
        self._filters = [
            ReadableMonochrome() if isinstance(f, Monochrome) else f for f in self._filters
        ]

    # ---- life cycle ------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self.config.theme:
            self.theme = self.config.theme
        keymap, error = load_keymap(self.config.keymap_file)
        if keymap:
            self.set_keymap(keymap)
        if error:
            self.keymap_error = error
            self.notify(error, severity="warning", timeout=8)
        self.run_worker(
            self.feed.run, thread=True, group="feed", exit_on_error=False, name="job feed"
        )
        self.load_catalog()
        self.set_interval(CATALOG_REFRESH, self._periodic_reload)
        if self.config.demo:
            self.start_demo()
        elif self.demo is not None and self.demo.note:
            self.notify(f"demo: {self.demo.note}", severity="warning", timeout=10)

    def on_unmount(self) -> None:
        self.feed.stop()

    # ---- background tasks ------------------------------------------------------------------

    def run_blocking(
        self,
        work: Callable[[], T],
        done: Callable[[T], None] | None,
        what: str,
        group: str = "task",
        exclusive: bool = False,
    ) -> Worker[T]:
        """Run a blocking call in a thread; `done(result)` on the UI thread, or a notification."""
        worker: Worker[T] = self.run_worker(
            work,
            thread=True,
            group=group,
            exclusive=exclusive,
            exit_on_error=False,
            description=what,
        )
        self._tasks[worker] = (done, what)
        return worker

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        entry = self._tasks.get(event.worker)
        if entry is None:
            if event.state is WorkerState.ERROR and event.worker.group == "feed":
                self.feed_error = describe_error(event.worker.error or RuntimeError("feed"))
                self.refresh_topbar()
            return
        done, what = entry
        if event.state is WorkerState.SUCCESS:
            del self._tasks[event.worker]
            if done is not None:
                try:
                    done(event.worker.result)
                except Exception as exc:  # a view's bug must not take the console down
                    self.report_error(what, exc)
        elif event.state is WorkerState.ERROR:
            del self._tasks[event.worker]
            error = event.worker.error or RuntimeError("unknown error")
            self.notify(f"{what}: {describe_error(error)}", severity="error", timeout=8)
        elif event.state is WorkerState.CANCELLED:
            del self._tasks[event.worker]

    def report_error(self, what: str, exc: BaseException) -> None:
        """One line on screen, the details in the console's log file."""
        path = self.write_error_log(exc)
        where = f" (details in {path})" if path else ""
        self.notify(f"{what}: {describe_error(exc)}{where}", severity="error", timeout=10)

    def write_error_log(self, exc: BaseException) -> str | None:
        try:
            directory = paths.state_dir(self.config.state_dir)
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = Path(directory) / "console.log"
            text = "".join(traceback.format_exception(exc))
            with open(path, "a") as fh:
                fh.write(redact(text) + "\n")
            return str(path)
        except OSError:
            return None

    def _handle_exception(self, error: Exception) -> None:
        # The last line of defence: an unexpected exception ends the console with one line
        # (and the traceback in console.log), never a traceback on the operator's screen.
        path = self.write_error_log(error)
        where = f" (details in {path})" if path else ""
        self._return_code = 1
        if self._exception is None:
            self._exception = error
            self._exception_event.set()
        self._exit_renderables.append(
            Text(f"pgvault: unexpected error: {describe_error(error)}{where}")
        )
        self._close_messages_no_wait()

    # ---- the job feed ----------------------------------------------------------------------

    def on_jobs_changed(self, message: JobsChanged) -> None:
        if self.jobs_loaded:
            # A backup that started, got its ID or ended changed its destination's catalog.
            for job in message.jobs:
                before = self.jobs.get(job.id)
                if (
                    job.kind in CATALOG_CHANGING
                    and job.destination
                    and (
                        before is None
                        or before.state is not job.state
                        or before.details.backup_id != job.details.backup_id
                    )
                ):
                    self._stale.add(job.destination)
            if self._stale and self._stale_timer is None:
                self._stale_timer = self.set_timer(1.0, self._reload_stale)
        if message.full:
            self.jobs = {job.id: job for job in message.jobs}
        else:
            for job in message.jobs:
                self.jobs[job.id] = job
        self.jobs_loaded = True
        if self.frozen:
            return
        self.refresh_topbar()
        self._forward("jobs_changed")

    def on_bandwidth_sampled(self, message: BandwidthSampled) -> None:
        self.bandwidth = message.samples
        if not self.frozen:
            self._forward("bandwidth_changed")

    def on_feed_status(self, message: FeedStatus) -> None:
        self.feed_error = message.error
        if message.error:
            self.notify(message.error, severity="error", timeout=6)
        self.refresh_topbar()

    def _shown(self) -> Screen[Any] | None:
        """The current screen; None while the console is closing (its screens are gone and
        the feed's last messages may still arrive)."""
        try:
            return self.screen
        except ScreenStackError:
            return None

    def _forward(self, method: str) -> None:
        handler = getattr(self._shown(), method, None)
        if handler is not None:
            handler()

    def refresh_topbar(self) -> None:
        from tui.widgets.topbar import TopBar

        screen = self._shown()
        if screen is not None:
            for bar in screen.query(TopBar):
                bar.refresh()

    # ---- the catalog -----------------------------------------------------------------------

    def catalog_urls(self) -> list[tuple[str, bool]]:
        """(URL, is the demo's) for every destination the catalog shows, each once."""
        urls = [(paths.default_destination(), False)]
        urls += [(url, False) for url in self.config.destinations]
        if self.demo is not None:
            urls.append((self.demo.destination, True))
        seen: set[str] = set()
        unique: list[tuple[str, bool]] = []
        for url, demo in urls:
            label = display_url(url)
            if label in seen:
                if demo:
                    unique = [(u, d or display_url(u) == label) for u, d in unique]
                continue
            seen.add(label)
            unique.append((url, demo))
        return unique

    def _reload_stale(self) -> None:
        stale, self._stale = self._stale, set()
        self._stale_timer = None
        known = {display_url(url) for url, _ in self.catalog_urls()}
        if stale & known:
            self.load_catalog(stale & known)

    def _periodic_reload(self) -> None:
        """Catalogs change behind the console's back (cron, other hosts): re-list while shown."""
        if self.current_mode != "jobs" and not self.frozen:
            self.load_catalog()

    def load_catalog(self, only: set[str] | None = None) -> None:
        """List every destination (or those labelled in `only`) again, each in a thread."""
        for url, demo in self.catalog_urls():
            label = display_url(url)
            if only is not None and label not in only:
                continue
            previous = self.destinations.get(label)
            self.destinations[label] = (
                DestinationView(url, label, loading=True, demo=demo)
                if previous is None
                else DestinationView(
                    url,
                    label,
                    previous.servers,
                    previous.error,
                    loading=True,
                    loaded=previous.loaded,
                    demo=demo,
                )
            )
            self.run_blocking(
                lambda url=url, demo=demo: load_destination(url, demo),  # type: ignore[misc]
                self._destination_loaded,
                f"listing {label}",
                group=f"destination {label}",
                exclusive=True,
            )
        self._forward("catalog_changed")

    def _destination_loaded(self, view: DestinationView) -> None:
        self.destinations[view.label] = view
        self._forward("catalog_changed")

    # ---- the demo --------------------------------------------------------------------------

    def start_demo(self) -> None:
        from core.demo import start_demo

        self.demo_status = "starting the demo"
        state_dir = self.config.state_dir

        def work() -> object:
            try:
                return start_demo(state_dir, step=self._demo_step)
            except PgvaultError as exc:
                self.post_message(DemoProgress(str(exc), error=True))
                return None

        self.run_blocking(work, self._demo_started, "demo", group="demo", exclusive=True)

    def _demo_step(self, text: str) -> None:
        self.post_message(DemoProgress(text))

    def on_demo_progress(self, message: DemoProgress) -> None:
        self.demo_status = message.text
        if message.error:
            self.demo_failed = True
            self.notify(message.text, severity="error", timeout=15)
        self._forward("demo_changed")

    def _demo_started(self, result: object) -> None:
        from core.demo import DemoStart

        if not isinstance(result, DemoStart):
            return
        self.demo = result.demo
        self.demo_job = result.job_id
        if result.job_id is not None:
            self.pending_selection = result.job_id
            what = result.job_note or f"backup job {result.job_id} of the demo cluster started"
            self.demo_status = what
            self.notify(f"demo: {what}", timeout=6)
        if result.demo.note:
            self.notify(f"demo: {result.demo.note}", severity="warning", timeout=15)
        self.feed.refresh()
        self.load_catalog()
        self._forward("demo_changed")

    # ---- jobs: the operator's verbs --------------------------------------------------------

    def control_job(self, job_id: int, verb: str) -> None:
        """pause, resume or cancel one job, from a thread (the store may be busy)."""
        state_dir = self.config.state_dir

        def work() -> str:
            with JobStore.open(state_dir) as store:
                request = {
                    "pause": store.request_pause,
                    "resume": store.request_resume,
                    "cancel": store.request_cancel,
                }[verb]
                job, changed = request(job_id)
            if not changed:
                return f"job {job_id} is already {job.state.value}"
            return f"job {job_id}: {verb} requested"

        def done(text: str) -> None:
            self.notify(text, timeout=4)
            self.feed.refresh()

        self.run_blocking(work, done, f"{verb} job {job_id}", group=f"job {job_id}")

    def retry_job(self, job_id: int) -> None:
        """Resume a failed backup in a new detached job that reuses what it uploaded."""
        state_dir = self.config.state_dir

        def work() -> Job:
            from core.jobs.runner import resume_request, spawn_detached

            with JobStore.open(state_dir) as store:
                kind, request = resume_request(store, job_id)
                return spawn_detached(store, kind, request, resumed_from=job_id)

        def done(job: Job) -> None:
            self.pending_selection = job.id
            self.notify(f"job {job.id} resumes failed job {job_id}", timeout=5)
            self.feed.refresh()

        self.run_blocking(work, done, f"resume job {job_id}", group=f"job {job_id}")

    def confirm_cancel(self, job: Job) -> None:
        from tui.modals.confirm import ConfirmScreen

        question = (
            f"Cancel job {job.id} ({job.description or job.kind})?\n"
            "Uploads in flight are aborted; a cancelled backup is never restorable."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.control_job(job.id, "cancel")

        self.push_screen(ConfirmScreen(question, title="Cancel job"), answered)

    # ---- global actions --------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.read_only and action in MUTATING)

    async def action_view(self, mode: str) -> None:
        if self.current_mode != mode:
            await self.switch_mode(mode)
        self.refresh_topbar()

    def job_started(self, job_id: int | None, what: str) -> None:
        """A job the console started: say so, and show it selected on the jobs view."""
        if job_id is None:
            return
        self.pending_selection = job_id
        self.notify(f"{what} job {job_id} started", timeout=4)
        self.feed.refresh()
        if self.current_mode != "jobs":
            self.call_later(self.action_view, "jobs")
        else:
            self._forward("jobs_changed")

    def action_new_backup(self) -> None:
        from tui.modals.new_backup import NewBackupScreen, form_defaults

        defaults = form_defaults(list(self.jobs.values()), self.demo, self.catalog_urls())
        self.push_screen(
            NewBackupScreen(defaults, self.config.state_dir),
            lambda job_id: self.job_started(job_id, "backup"),
        )

    # ---- backups in a catalog: restore, verify, delete -------------------------------------

    def open_restore(self, ref: BackupRef) -> None:
        from tui.modals.restore import RestoreScreen

        self.push_screen(
            RestoreScreen(ref, self.config.state_dir),
            lambda job_id: self.job_started(job_id, "restore"),
        )

    def confirm_verify(self, ref: BackupRef) -> None:
        from tui.modals.confirm import ConfirmScreen

        question = (
            f"Verify backup {ref.info.backup_id} of {ref.server}?\n"
            f"Reads every object of it from {ref.label} and checks every checksum and the "
            "WAL it needs; nothing is changed."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.start_catalog_job("verify", ref)

        self.push_screen(ConfirmScreen(question, title="Verify backup"), answered)

    def confirm_delete(self, ref: BackupRef) -> None:
        from tui.modals.confirm import ConfirmScreen

        question = (
            f"Delete backup {ref.info.backup_id} of {ref.server} from {ref.label}?\n"
            "Its objects are removed, then the WAL no remaining backup needs. "
            "This cannot be undone."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.start_catalog_job("delete", ref)

        self.push_screen(ConfirmScreen(question, title="Delete backup"), answered)

    def start_catalog_job(self, verb: str, ref: BackupRef) -> None:
        """A verify or delete job of one backup, detached, started from a thread."""
        state_dir = self.config.state_dir

        def work() -> Job:
            from core.jobs.builtin import DELETE, VERIFY
            from core.jobs.runner import spawn_detached
            from core.urls import parse_location

            location = parse_location(ref.url)
            backup = ref.info.backup_id
            with JobStore.open(state_dir) as store:
                if verb == "verify":
                    from core.verify import VerifyRequest

                    return spawn_detached(
                        store, VERIFY, VerifyRequest(location, ref.server, backup)
                    )
                from core.delete import DeleteRequest

                return spawn_detached(
                    store, DELETE, DeleteRequest(location, ref.server, backup=backup)
                )

        self.run_blocking(
            work,
            lambda job: self.job_started(job.id, verb),
            f"{verb} backup {ref.info.backup_id}",
            group=f"backup {ref.info.backup_id}",
        )

    def action_help(self) -> None:
        from tui.modals.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        # A help screen is built once per distinct content and kept installed: composing
        # and styling it again cost most of the key's time.
        help_screen = HelpScreen.for_screen(self.screen)
        name = self._help_screens.get(help_screen.identity())
        if name is None:
            name = f"help-{len(self._help_screens)}"
            self._help_screens[help_screen.identity()] = name
            self.install_screen(help_screen, name)
        self.push_screen(name)

    def action_refresh(self) -> None:
        self.feed.refresh()
        reload = getattr(self.screen, "reload", None)
        if reload is not None:
            reload()
        else:
            self.load_catalog()
        self.notify("refreshing", timeout=1.5)

    def action_freeze(self) -> None:
        self.frozen = not self.frozen
        self.refresh_topbar()
        if not self.frozen:
            self._forward("jobs_changed")
            self._forward("bandwidth_changed")

    def job_counts(self) -> dict[JobState, int]:
        counts: dict[JobState, int] = {}
        for job in self.jobs.values():
            counts[job.state] = counts.get(job.state, 0) + 1
        return counts


def choose_theme() -> str | None:
    """ansi-dark on terminals of 16 colours (the terminal's own palette reads best there)."""
    override = os.environ.get("PGVAULT_THEME")
    if override:
        return override
    if os.environ.get("TEXTUAL_THEME"):
        return None
    from rich.console import Console

    system = Console(force_terminal=True).color_system
    return "ansi-dark" if system in (None, "standard", "windows") else None


def run_console(state_dir: str | None, read_only: bool, demo: bool, destinations: list[str]) -> int:
    config = ConsoleConfig(
        state_dir=state_dir,
        destinations=tuple(destinations),
        read_only=read_only,
        demo=demo,
        theme=choose_theme(),
    )
    app = PgvaultApp(config)
    result = app.run()
    return int(result or app.return_code or 0)
