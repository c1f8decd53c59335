"""The command palette (ctrl+p or `:`): views, a new backup, every job by id or server, and
every listed backup by id (show, restore, verify, delete).

Read-only consoles are offered nothing that changes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen

from core.jobs import JobState
from tui.catalog_data import BackupRef
from tui.config import VIEWS
from tui.screens.catalog import backup_action_allowed

if TYPE_CHECKING:
    from tui.app import PgvaultApp

Command = tuple[str, str, Callable[[], object]]  # (title, help, callback)

#: backups offered per server, newest first (a long catalog is browsed in its view)
BACKUPS_PER_SERVER = 50


class ConsoleCommands(Provider):
    """pgvault's own commands."""

    def _commands(self) -> Iterator[Command]:
        app = cast("PgvaultApp", self.app)
        for mode, key, label in VIEWS:
            yield (
                f"Go to {label}",
                f"view {key}",
                partial(app.run_action, f"view('{mode}')"),
            )
        if not app.read_only:
            yield ("New backup", "open the backup form (n)", app.action_new_backup)
        yield (
            "Refresh",
            "read the job store and list every destination again (R)",
            app.action_refresh,
        )
        yield ("Freeze display", "stop or restart updating the screen (Z)", app.action_freeze)
        for job in sorted(app.jobs.values(), key=lambda j: j.id, reverse=True)[:200]:
            what = f"{job.kind} {job.server or ''} ({job.state.value})"
            yield (f"Open job {job.id}: {what}", job.description, partial(self._open, job.id))
            if app.read_only:
                continue
            if job.state in (JobState.RUNNING, JobState.PENDING):
                yield (f"Pause job {job.id}: {what}", "", partial(app.control_job, job.id, "pause"))
            if job.state in (JobState.PAUSED, JobState.PAUSE_REQUESTED):
                yield (
                    f"Resume job {job.id}: {what}",
                    "",
                    partial(app.control_job, job.id, "resume"),
                )
            if not job.final and job.state is not JobState.CANCEL_REQUESTED:
                yield (
                    f"Cancel job {job.id}: {what}",
                    "asks first",
                    partial(app.confirm_cancel, job),
                )
        yield from self._backup_commands()

    def _backup_commands(self) -> Iterator[Command]:
        app = cast("PgvaultApp", self.app)
        for view in app.destinations.values():
            for server in view.servers:
                for info in reversed(server.backups[-BACKUPS_PER_SERVER:]):
                    ref = BackupRef(
                        view.url, view.label, server.name, info, server.stored.get(info.backup_id)
                    )
                    what = f"backup {info.backup_id} of {server.name} ({info.status})"
                    yield (f"Show {what}", view.label, partial(self._show_backup, ref))
                    if app.read_only:
                        continue
                    if backup_action_allowed("restore", ref):
                        yield (
                            f"Restore {what}",
                            "opens the restore form",
                            partial(app.open_restore, ref),
                        )
                    if backup_action_allowed("verify", ref):
                        yield (f"Verify {what}", "asks first", partial(app.confirm_verify, ref))
                    if backup_action_allowed("delete", ref):
                        yield (f"Delete {what}", "asks first", partial(app.confirm_delete, ref))

    def _show_backup(self, ref: BackupRef) -> None:
        from tui.screens.backup import BackupScreen

        self._push_in("catalog", lambda: BackupScreen(ref))

    def _open(self, job_id: int) -> None:
        from tui.screens.job_detail import JobDetailScreen

        self._push_in("jobs", lambda: JobDetailScreen(job_id))

    def _push_in(self, mode: str, screen: Callable[[], Screen[object]]) -> None:
        """Switch to a view, then open a screen over it."""
        app = cast("PgvaultApp", self.app)

        async def go() -> None:
            if app.current_mode != mode:
                await app.switch_mode(mode)
            app.push_screen(screen())

        app.call_later(go)

    async def discover(self) -> Hits:
        for title, help_text, callback in list(self._commands())[:10]:
            yield DiscoveryHit(title, callback, help=help_text or None)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text or None)
