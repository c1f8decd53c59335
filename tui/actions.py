"""The operator's verbs, in one place: what the keys, the palette and the screens' requests do.

The app routes each request message (tui.messages) and each global key to one method here.
Anything that blocks (the job store, starting a job, listing a destination) runs in a thread
worker (tui.tasks); forms and confirmations are modal screens whose answer comes back as a
callback. After changing the state, the shown screen is told what changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import App
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.timer import Timer

from core.errors import PgvaultError
from core.jobs import Job, JobStore, reachable
from core.logical.attempt import UNFINISHED
from tui.adapter import (
    BackupRef,
    DestinationView,
    HeldKeys,
    display_url,
    list_server,
    load_destination,
)
from tui.feed import JobFeed
from tui.messages import DemoProgress
from tui.modals.confirm import ConfirmScreen
from tui.modals.help import HelpScreen
from tui.modals.logical_restore import LogicalRestoreScreen, target_defaults
from tui.modals.new_backup import NewBackupScreen, form_defaults
from tui.modals.restore import RestoreScreen
from tui.modals.unlock import UnlockScreen
from tui.screens.backup import BackupScreen
from tui.screens.base import ConsoleScreen, shown_screen
from tui.screens.job_detail import JobDetailScreen
from tui.state import ConsoleState
from tui.tasks import Tasks

#: seconds after a job changed a destination before it is listed again (changes coalesce)
STALE_DELAY = 1.0
#: the name the job detail screen is installed under (one for every job)
DETAIL_SCREEN = "job-detail"
#: a job-store request of one job: (store, job id) -> (the job, whether it changed)
StoreRequest = Callable[[JobStore, int], tuple[Job, bool]]


class ConsoleActions:
    """Verbs over the app's state; the app owns the objects, this module what they do."""

    def __init__(self, app: App[Any], state: ConsoleState, tasks: Tasks, feed: JobFeed) -> None:
        self.app = app
        self.state = state
        self.tasks = tasks
        self.feed = feed
        #: installed help screens by what they show (HelpScreen.identity)
        self._help_screens: dict[tuple[object, ...], str] = {}
        self._stale: set[str] = set()
        self._stale_timer: Timer | None = None
        self._detail: JobDetailScreen | None = None

    def tell(self, change: Callable[[ConsoleScreen], None]) -> None:
        """Tell the shown view what changed (`ConsoleScreen.jobs_changed` and so on)."""
        screen = shown_screen(self.app)
        if screen is None:
            return
        try:
            change(screen)
        except NoMatches:
            # A view being composed or torn down (a mode switch, the console quitting while
            # the feed still reports) lacks its widgets; it redraws from the state when shown.
            return

    # ---- views -----------------------------------------------------------------------------

    async def view(self, mode: str) -> None:
        if self.app.current_mode != mode:
            await self.app.switch_mode(mode)
        self.tell(lambda screen: screen.status_changed())

    def open_job(self, job: Job) -> None:
        """The job detail on `job`: one screen, kept installed and shown on each job
        (composing and styling it anew cost most of `enter`'s time)."""
        detail = self._detail
        if detail is None:
            detail = self._detail = JobDetailScreen(job.id, self.state)
            self.app.install_screen(detail, DETAIL_SCREEN)

        async def go() -> None:
            if self.app.current_mode != "jobs":
                await self.app.switch_mode("jobs")
            if detail in self.app.screen_stack:
                # Opened from the palette over the detail itself: show the other job there.
                while self.app.screen is not detail:
                    self.app.pop_screen()
                detail.show_job(job.id)
                return
            detail.show_job(job.id)
            self.app.push_screen(detail)

        if self.app.current_mode == "jobs" and detail not in self.app.screen_stack:
            # `enter` on the jobs view: pushed as the App reads the key (messages.ask_now),
            # so that the keys typed with it reach the detail, not the jobs table.
            detail.show_job(job.id)
            self.app.push_screen(detail)
            return
        self.app.call_later(go)

    def open_backup(self, ref: BackupRef) -> None:
        now = self._push_in("catalog", lambda: BackupScreen(ref, self.state, self.tasks))
        if ref.logical is None and self.state.locked(ref):
            # Its databases and tables are in its sealed pgvault.json: ask for the key over
            # the backup's screen (esc leaves that screen with what backup.info says).
            purpose = "to show its databases and tables"
            if now:
                self.unlock(ref, None, purpose)  # over it at once: keys typed with `enter`
            else:
                self.app.call_later(self.unlock, ref, None, purpose)

    def _push_in(self, mode: str, screen: Callable[[], Screen[Any]]) -> bool:
        """Open a screen over a view, at once when it is shown (True), else once switched."""
        if self.app.current_mode == mode:
            self.app.push_screen(screen())
            return True

        async def go() -> None:
            if self.app.current_mode != mode:
                await self.app.switch_mode(mode)
            self.app.push_screen(screen())

        self.app.call_later(go)
        return False

    def help(self) -> None:
        app = self.app
        if isinstance(app.screen, HelpScreen):
            app.pop_screen()
            return
        # A help screen is built once per distinct content and kept installed: composing
        # and styling it again cost most of the key's time.
        help_screen = HelpScreen.for_screen(app.screen)
        name = self._help_screens.get(help_screen.identity())
        if name is None:
            name = f"help-{len(self._help_screens)}"
            self._help_screens[help_screen.identity()] = name
            app.install_screen(help_screen, name)
        app.push_screen(name)

    def refresh(self) -> None:
        self.feed.refresh()
        self.tell(lambda screen: screen.forget_listings())
        self.reload_catalog()
        self.app.notify("refreshing", timeout=1.5)

    def freeze(self) -> None:
        self.state.frozen = not self.state.frozen
        self.tell(lambda screen: screen.status_changed())
        if not self.state.frozen:
            self.tell(lambda screen: screen.jobs_changed())
            self.tell(lambda screen: screen.bandwidth_changed())

    # ---- jobs ------------------------------------------------------------------------------

    def pause_job(self, job: Job) -> None:
        self._control(job.id, "pause", JobStore.request_pause)

    def resume_job(self, job: Job) -> None:
        self._control(job.id, "resume", JobStore.request_resume)

    def cancel_job(self, job: Job) -> None:
        """Ask first; cancel only on yes."""
        question = (
            f"Cancel job {job.id} ({job.description or job.kind})?\n"
            "Uploads in flight are aborted; a cancelled backup is never restorable."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._control(job.id, "cancel", JobStore.request_cancel)

        self.app.push_screen(ConfirmScreen(question, title="Cancel job"), answered)

    def _control(self, job_id: int, verb: str, request: StoreRequest) -> None:
        """Pause, resume or cancel one job, from a thread (the store may be busy)."""
        state_dir, clock = self.state.config.state_dir, self.state.config.clock

        def work() -> str:
            with JobStore.open(state_dir) as store:
                reachable(store, job_id, verb, clock())  # another host's job that went quiet
                job, changed = request(store, job_id)
            if not changed:
                return f"job {job_id} is already {job.state.value}"
            return f"job {job_id}: {verb} requested"

        def done(text: str) -> None:
            self.app.notify(text, timeout=4)
            self.feed.refresh()

        self.tasks.run(work, done, f"{verb} job {job_id}", group=f"job {job_id}")

    def retry_job(self, job: Job) -> None:
        """Resume a failed backup (or a cancelled logical one) in a new detached job; of an
        encrypted server, once unlocked (without its keys the resume fails at once)."""
        ref = self.state.job_ref(job)
        if ref is not None and self.state.locked(ref):
            self.unlock(ref, lambda: self.retry_job(job), "to resume it")
            return
        state_dir, failed = self.state.config.state_dir, job.id
        environment = self.state.job_environment(job.destination or "", job.server or "")

        def work() -> Job:
            from core.jobs.runner import resume_request, spawn_detached

            with JobStore.open(state_dir) as store:
                kind, request = resume_request(store, failed)
                return spawn_detached(
                    store, kind, request, resumed_from=failed, environment=environment
                )

        def done(new: Job) -> None:
            self.state.pending_selection = new.id
            self.app.notify(f"job {new.id} resumes job {failed}", timeout=5)
            self.feed.refresh()

        self.tasks.run(work, done, f"resume job {failed}", group=f"job {failed}")

    def new_backup(self) -> None:
        state = self.state
        defaults = form_defaults(list(state.jobs.values()), state.demo, state.catalog_urls())
        self.app.push_screen(
            NewBackupScreen(defaults, state.config.state_dir, state.job_environment),
            lambda job_id: self.job_started(job_id, "backup"),
        )

    def job_started(self, job_id: int | None, what: str) -> None:
        """A job the console started: say so, and show it selected on the jobs view."""
        if job_id is None:
            return
        self.state.pending_selection = job_id
        self.app.notify(f"{what} job {job_id} started", timeout=4)
        self.feed.refresh()
        if self.app.current_mode != "jobs":
            self.app.call_later(self.view, "jobs")
        else:
            self.tell(lambda screen: screen.jobs_changed())

    # ---- backups in a catalog: restore, verify, delete -------------------------------------

    def unlock(
        self, ref: BackupRef, then: Callable[[], None] | None = None, purpose: str = "to read it"
    ) -> None:
        """The unlock form for the backup's server; `then` once its keys are held."""

        def unlocked(held: HeldKeys | None) -> None:
            if held is None:
                return
            self.state.keys[(ref.label, ref.server)] = held
            self.app.notify(f"server {ref.server} unlocked in this console", timeout=4)
            self.tell(lambda screen: screen.keys_changed())
            # Logical manifests and incrementals' kinds are read with the listing.
            self.reload_catalog({ref.label})
            if then is not None:
                then()

        self.app.push_screen(UnlockScreen(ref, purpose), unlocked)

    def restore_backup(self, ref: BackupRef) -> None:
        state = self.state
        if state.locked(ref):
            self.unlock(ref, lambda: self.restore_backup(ref), "to restore it")
            return
        if ref.logical is not None:
            target = target_defaults(list(state.jobs.values()), state.demo, ref.server)
            self.app.push_screen(
                LogicalRestoreScreen(ref, target, state.config.state_dir, state.job_environment),
                lambda job_id: self.job_started(job_id, "logical restore"),
            )
            return
        view = state.destinations.get(ref.label)
        server = view.server(ref.server) if view is not None and view.loaded else None
        listed = server.backups if server is not None and not server.error else None
        self.app.push_screen(
            RestoreScreen(
                ref,
                state.config.state_dir,
                state.job_environment,
                listed,
                lambda: list_server(ref.url, ref.server),
            ),
            lambda job_id: self.job_started(job_id, "restore"),
        )

    def verify_backup(self, ref: BackupRef) -> None:
        if self.state.locked(ref):
            self.unlock(ref, lambda: self.verify_backup(ref), "to verify it")
            return
        question = (
            f"Verify backup {ref.info.backup_id} of {ref.server}?\n"
            f"Reads every object of it from {ref.label} and checks every checksum and the "
            "WAL it needs; nothing is changed."
        )
        self._confirm_catalog_job("verify", ref, question, "Verify backup")

    def delete_backup(self, ref: BackupRef) -> None:
        if ref.logical is not None:
            if ref.logical.status in UNFINISHED:
                title, question = (
                    "Delete unfinished logical backup",
                    f"Delete what logical backup {ref.info.backup_id} of {ref.server} left in "
                    f"{ref.label}?\nIt has no logical.json: nothing of it can be restored. "
                    "One still running is refused.",
                )
            else:
                title, question = (
                    "Delete logical backup",
                    f"Delete logical backup {ref.info.backup_id} of {ref.server} from "
                    f"{ref.label}?\nIts manifest is removed first, then its dump files. This "
                    "cannot be undone.",
                )
            self.app.push_screen(
                ConfirmScreen(question, title=title),
                lambda yes: self._delete_logical(ref) if yes else None,
            )
            return
        question = (
            f"Delete backup {ref.info.backup_id} of {ref.server} from {ref.label}?\n"
            "Its objects are removed, then the WAL no remaining backup needs. "
            "This cannot be undone."
        )
        self._confirm_catalog_job("delete", ref, question, "Delete backup")

    def _delete_logical(self, ref: BackupRef) -> None:
        """One logical backup, from a thread: a few deletes, no WAL (as backup-delete does)."""

        def work() -> object:
            from core.logical.catalog import delete_logical
            from tui.adapter import open_for_browsing

            with open_for_browsing(ref.url) as store:
                unfinished = ref.logical is not None and ref.logical.status in UNFINISHED
                return delete_logical(store, ref.server, ref.info.backup_id, unfinished)

        def done(_: object) -> None:
            self.app.notify(f"logical backup {ref.info.backup_id} deleted", timeout=4)
            self.reload_catalog({ref.label})

        self.tasks.run(
            work,
            done,
            f"delete logical backup {ref.info.backup_id}",
            group=f"backup {ref.info.backup_id}",
        )

    # ---- the WAL archive -------------------------------------------------------------------

    def repair_wal(self, url: str, label: str, server: str) -> None:
        """The repair form; its job (wal-repair) shows on the jobs view."""
        from tui.modals.wal_repair import WalRepairScreen, repair_defaults

        defaults = repair_defaults(list(self.state.jobs.values()), server)
        self.app.push_screen(
            WalRepairScreen(url, label, server, defaults, self.state.config.state_dir),
            lambda job_id: self.job_started(job_id, "WAL repair"),
        )

    # ---- protection ------------------------------------------------------------------------

    def set_protection(self, vault: str, instance: str, stop: bool) -> None:
        """Stop (once confirmed) or resume an instance's protection, from a thread."""
        state_dir = self.state.config.state_dir

        def work() -> object:
            from core.protection.model import ProtectionState
            from core.protection.service import set_protection

            wanted = ProtectionState.STOPPED if stop else ProtectionState.CONFIGURED
            return set_protection(state_dir, vault, instance, wanted)

        def done(_: object) -> None:
            word = "stopped" if stop else "resumed"
            self.app.notify(f"protection of {instance} {word}", timeout=3)
            self.tell(lambda screen: screen.forget_listings())

        def go() -> None:
            self.tasks.run(work, done, f"changing the protection of {instance}")

        if not stop:
            go()
            return
        question = (
            f"Stop protecting {instance} in vault {vault}?\n"
            "The agent takes no more scheduled backups of it and applies no retention; its "
            "backups stay. Resume with `r`."
        )
        self.app.push_screen(
            ConfirmScreen(question, title="Stop protection"), lambda yes: go() if yes else None
        )

    def _confirm_catalog_job(self, verb: str, ref: BackupRef, question: str, title: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._start_catalog_job(verb, ref)

        self.app.push_screen(ConfirmScreen(question, title=title), answered)

    def _start_catalog_job(self, verb: str, ref: BackupRef) -> None:
        """A verify or delete job of one backup, detached, started from a thread."""
        state_dir = self.state.config.state_dir
        environment = self.state.job_environment(ref.label, ref.server)

        def work() -> Job:
            from core.catalog.delete import DeleteRequest
            from core.catalog.delete_job import DELETE
            from core.jobs.runner import spawn_detached
            from core.urls import parse_location
            from core.verify import VerifyRequest
            from core.verify_job import VERIFY

            location = parse_location(ref.url)
            backup = ref.info.backup_id
            with JobStore.open(state_dir) as store:
                if verb == "verify":
                    return spawn_detached(
                        store,
                        VERIFY,
                        VerifyRequest(location, ref.server, backup),
                        environment=environment,
                    )
                return spawn_detached(
                    store, DELETE, DeleteRequest(location, ref.server, backup=backup)
                )

        self.tasks.run(
            work,
            lambda job: self.job_started(job.id, verb),
            f"{verb} backup {ref.info.backup_id}",
            group=f"backup {ref.info.backup_id}",
        )

    # ---- the catalog -----------------------------------------------------------------------

    def reload_catalog(self, only: set[str] | None = None) -> None:
        """List every destination (or those labelled in `only`) again, each in a thread."""
        for url, demo in self.state.catalog_urls():
            if only is not None and display_url(url) not in only:
                continue
            label = self.state.listing_started(url, demo)
            self.tasks.run(
                lambda url=url, demo=demo: load_destination(url, demo),  # type: ignore[misc]
                self._destination_loaded,
                f"listing {label}",
                group=f"destination {label}",
                exclusive=True,
            )
        self.tell(lambda screen: screen.catalog_changed())

    def _destination_loaded(self, view: DestinationView) -> None:
        self.state.destinations[view.label] = view
        self.tell(lambda screen: screen.catalog_changed())

    def catalogs_changed(self, destinations: set[str]) -> None:
        """Jobs changed these destinations: list them again shortly (changes coalesce)."""
        self._stale |= destinations
        if self._stale and self._stale_timer is None:
            self._stale_timer = self.app.set_timer(STALE_DELAY, self._reload_stale)

    def _reload_stale(self) -> None:
        stale, self._stale = self._stale, set()
        self._stale_timer = None
        known = {display_url(url) for url, _ in self.state.catalog_urls()}
        if stale & known:
            self.reload_catalog(stale & known)

    def periodic_reload(self) -> None:
        """Catalogs change behind the console's back (cron, other hosts): re-list while shown."""
        if self.app.current_mode != "jobs" and not self.state.frozen:
            self.reload_catalog()

    # ---- the demo --------------------------------------------------------------------------

    def start_demo(self) -> None:
        from core.demo import start_demo

        self.state.demo_status = "starting the demo"
        state_dir = self.state.config.state_dir
        app = self.app

        def step(text: str) -> None:
            app.post_message(DemoProgress(text))

        def work() -> object:
            try:
                return start_demo(state_dir, step=step)
            except PgvaultError as exc:
                app.post_message(DemoProgress(str(exc), error=True))
                return None

        self.tasks.run(work, self._demo_started, "demo", group="demo", exclusive=True)

    def demo_progress(self, message: DemoProgress) -> None:
        self.state.demo_status = message.text
        if message.error:
            self.state.demo_failed = True
            self.app.notify(message.text, severity="error", timeout=15)
        self.tell(lambda screen: screen.demo_changed())

    def _demo_started(self, result: object) -> None:
        from core.demo import DemoStart

        if not isinstance(result, DemoStart):
            return
        state = self.state
        state.demo = result.demo
        state.demo_job = result.job_id
        if result.job_id is not None:
            state.pending_selection = result.job_id
            what = result.job_note or f"backup job {result.job_id} of the demo cluster started"
            state.demo_status = what
            self.app.notify(f"demo: {what}", timeout=6)
        if result.demo.note:
            self.app.notify(f"demo: {result.demo.note}", severity="warning", timeout=15)
        self.feed.refresh()
        self.reload_catalog()
        self.tell(lambda screen: screen.demo_changed())
