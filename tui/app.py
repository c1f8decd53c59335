"""The Textual console. Imported only when the console opens (never by --batch).

The app is where the console's parts meet; it owns them and decides nothing itself:

    JobFeed (thread) --messages--> app --> ConsoleState <-- screens read it
    screens, palette --requests--> app --> ConsoleActions (tui.actions): the verbs
                                   app --> the shown screen: what changed

Views are Textual modes (1 jobs, 2 catalog, 3 WAL archive, 4 protection); drill-downs are
pushed screens; forms and confirmations are modal screens. Nothing slow runs on the UI thread
(tui.tasks).
"""

from __future__ import annotations

import os
from functools import partial

from rich.text import Text
from textual.app import App
from textual.binding import Binding
from textual.driver import Driver
from textual.screen import ModalScreen
from textual.widgets import Input
from textual.worker import Worker, WorkerState

from tui.actions import ConsoleActions
from tui.adapter import describe_error
from tui.commands import ConsoleCommands
from tui.config import MUTATING, ConsoleConfig
from tui.feed import JobFeed
from tui.keymap import load_keymap
from tui.messages import (
    BandwidthSampled,
    CancelJob,
    DeleteBackup,
    DemoProgress,
    FeedStatus,
    JobsChanged,
    OpenBackup,
    OpenJob,
    PauseJob,
    RepairWal,
    RestoreBackup,
    ResumeJob,
    ResumeProtection,
    RetryJob,
    StopProtection,
    UnlockBackup,
    VerifyBackup,
)
from tui.screens.catalog import CatalogScreen
from tui.screens.jobs import JobsScreen
from tui.screens.protection import ProtectionScreen
from tui.screens.wal import WalScreen
from tui.state import ConsoleState
from tui.tasks import Tasks, write_error_log

#: seconds between listings while a catalog view is shown
CATALOG_REFRESH = 30.0
#: seconds a view switch holds the screen back (Textual's 50 ms masks a half-drawn view;
#: the views here are kept mounted, so the next frame is whole already)
SWITCH_DELAY = 0.005


class PgvaultApp(App[int]):
    """The operator console."""

    TITLE = "pgvault"
    CSS_PATH = "pgvault.tcss"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    DEFAULT_MODE = "jobs"

    BINDINGS = [
        Binding("1", "view('jobs')", "Jobs", show=False, id="view.jobs"),
        Binding("2", "view('catalog')", "Catalog", show=False, id="view.catalog"),
        Binding("3", "view('wal')", "WAL", show=False, id="view.wal"),
        Binding("4", "view('protection')", "Protection", show=False, id="view.protection"),
        # Priority, as `:`: the form opens as the App reads `n`, so that the keys typed
        # after it in the same read go to its first field, not to the view behind it.
        Binding("n", "new_backup", "New backup", id="job.new", priority=True),
        Binding("question_mark,f1", "help", "Help", key_display="?", id="help"),
        Binding("R,f5", "refresh", "Refresh", show=False, id="refresh"),
        Binding("Z", "freeze", "Freeze", show=False, id="freeze"),
        # Priority: run as the App reads `:`, so that a command typed with it (`:pause 3`,
        # one read) reaches the palette's search (typed into a filter, `:` is a character).
        # ctrl+p is named here too: Textual adds its own ctrl+p only when no binding runs
        # the palette, and this one does.
        Binding(
            "colon,ctrl+p", "command_palette", "Commands", show=False, id="palette", priority=True
        ),
        Binding("q,f10", "quit", "Quit", id="quit"),
    ]

    def __init__(self, config: ConsoleConfig) -> None:
        super().__init__()
        if self.no_color:
            self._use_readable_monochrome()
        from core.demo import load_demo

        self.config = config
        self.state = ConsoleState(config, demo=load_demo())
        self.tasks = Tasks(self, config.state_dir)
        self.feed = JobFeed(self.post_message, config)
        self.actions = ConsoleActions(self, self.state, self.tasks, self.feed)
        self.keymap_error: str | None = None
        self.add_mode("jobs", partial(JobsScreen, self.state))
        self.add_mode("catalog", partial(CatalogScreen, self.state))
        self.add_mode("wal", partial(WalScreen, self.state, self.tasks))
        self.add_mode("protection", partial(ProtectionScreen, self.state, self.tasks))

    def _use_readable_monochrome(self) -> None:
        from textual.filter import Monochrome

        from tui.monochrome import ReadableMonochrome

        # Textual keeps its output filters in a private list; the monochrome snapshot test
        # notices if that ever changes.
        self._filters = [
            ReadableMonochrome() if isinstance(f, Monochrome) else f for f in self._filters
        ]

    def get_driver_class(self) -> type[Driver]:
        # The quick-escape driver on Linux and macOS (TEXTUAL_DRIVER still chooses).
        driver = super().get_driver_class()
        from textual.drivers.linux_driver import LinuxDriver

        if driver is not LinuxDriver:
            return driver
        from tui.driver import QuickEscapeDriver

        return QuickEscapeDriver

    def delay_update(self, delay: float = SWITCH_DELAY) -> None:
        # switch_mode calls this with Textual's 50 ms: that much added to every view switch.
        super().delay_update(min(delay, SWITCH_DELAY))

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
        self.actions.reload_catalog()
        self.set_interval(CATALOG_REFRESH, self.actions.periodic_reload)
        demo = self.state.demo
        if self.config.demo:
            self.actions.start_demo()
        elif demo is not None and demo.note:
            self.notify(f"demo: {demo.note}", severity="warning", timeout=10)

    def on_unmount(self) -> None:
        self.feed.stop()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if self.tasks.finished(event):
            return
        if event.state is WorkerState.ERROR and event.worker.group == "feed":
            self.state.feed_error = describe_error(event.worker.error or RuntimeError("feed"))
            self.actions.tell(lambda screen: screen.status_changed())

    def _handle_exception(self, error: Exception) -> None:
        # The last line of defence: an unexpected exception ends the console with one line
        # (and the traceback in console.log), never a traceback on the operator's screen.
        path = write_error_log(self.config.state_dir, error)
        where = f" (details in {path})" if path else ""
        self._return_code = 1
        if self._exception is None:
            self._exception = error
            self._exception_event.set()
        self._exit_renderables.append(
            Text(f"pgvault: unexpected error: {describe_error(error)}{where}")
        )
        self._close_messages_no_wait()

    # ---- what the feed and the demo report -------------------------------------------------

    def on_jobs_changed(self, message: JobsChanged) -> None:
        self.actions.catalogs_changed(self.state.apply_jobs(message.jobs, message.full))
        if self.state.frozen:
            return
        self.actions.tell(lambda screen: screen.status_changed())
        self.actions.tell(lambda screen: screen.jobs_changed())

    def on_bandwidth_sampled(self, message: BandwidthSampled) -> None:
        self.state.bandwidth = message.samples
        if not self.state.frozen:
            self.actions.tell(lambda screen: screen.bandwidth_changed())

    def on_feed_status(self, message: FeedStatus) -> None:
        self.state.feed_error = message.error
        if message.error:
            self.notify(message.error, severity="error", timeout=6)
        self.actions.tell(lambda screen: screen.status_changed())

    def on_demo_progress(self, message: DemoProgress) -> None:
        self.actions.demo_progress(message)

    # ---- what screens ask for --------------------------------------------------------------

    def on_open_job(self, message: OpenJob) -> None:
        self.actions.open_job(message.job)

    def on_pause_job(self, message: PauseJob) -> None:
        self.actions.pause_job(message.job)

    def on_resume_job(self, message: ResumeJob) -> None:
        self.actions.resume_job(message.job)

    def on_cancel_job(self, message: CancelJob) -> None:
        self.actions.cancel_job(message.job)

    def on_retry_job(self, message: RetryJob) -> None:
        self.actions.retry_job(message.job)

    def on_open_backup(self, message: OpenBackup) -> None:
        self.actions.open_backup(message.ref)

    def on_restore_backup(self, message: RestoreBackup) -> None:
        self.actions.restore_backup(message.ref)

    def on_verify_backup(self, message: VerifyBackup) -> None:
        self.actions.verify_backup(message.ref)

    def on_delete_backup(self, message: DeleteBackup) -> None:
        self.actions.delete_backup(message.ref)

    def on_unlock_backup(self, message: UnlockBackup) -> None:
        self.actions.unlock(message.ref)

    def on_repair_wal(self, message: RepairWal) -> None:
        self.actions.repair_wal(message.url, message.label, message.server)

    def on_stop_protection(self, message: StopProtection) -> None:
        self.actions.set_protection(message.vault, message.instance, stop=True)

    def on_resume_protection(self, message: ResumeProtection) -> None:
        self.actions.set_protection(message.vault, message.instance, stop=False)

    # ---- global keys -----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("command_palette", "new_backup") and isinstance(self.focused, Input):
            return False  # typed into a filter or a form's field, `:` and `n` are characters
        if action == "new_backup" and isinstance(self.screen, ModalScreen):
            return False  # a form, help, a question: not one form over another
        return not (self.state.read_only and action in MUTATING)

    async def action_view(self, mode: str) -> None:
        await self.actions.view(mode)

    def action_new_backup(self) -> None:
        self.actions.new_backup()

    def action_help(self) -> None:
        self.actions.help()

    def action_refresh(self) -> None:
        self.actions.refresh()

    def action_freeze(self) -> None:
        self.actions.freeze()


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
