"""The command palette (ctrl+p or `:`): views, a new backup, every job by id or server, and
every listed backup by id (show, restore, verify, delete).

Read-only consoles are offered nothing that changes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Protocol, runtime_checkable

from textual.command import DiscoveryHit, Hit, Hits, Provider

from core.jobs import JobState
from tui.actions import ConsoleActions
from tui.adapter import server_refs
from tui.config import VIEWS
from tui.screens.backup_actions import backup_action_allowed, unlock_allowed
from tui.state import ConsoleState

Command = tuple[str, str, Callable[[], object]]  # (title, help, callback)

#: backups offered per server, newest first (a long catalog is browsed in its view)
BACKUPS_PER_SERVER = 50
#: jobs offered, newest first
JOBS_OFFERED = 200


@runtime_checkable
class Console(Protocol):
    """What the palette needs of the app it runs in (it may not import the app)."""

    state: ConsoleState
    actions: ConsoleActions


class ConsoleCommands(Provider):
    """pgvault's own commands."""

    def _console(self) -> Console:
        if not isinstance(self.app, Console):
            raise TypeError("pgvault's commands run in the pgvault console")
        return self.app

    def _commands(self) -> Iterator[Command]:
        console = self._console()
        state, actions = console.state, console.actions
        for mode, key, label in VIEWS:
            yield (f"Go to {label}", f"view {key}", partial(actions.view, mode))
        if not state.read_only:
            yield ("New backup", "open the backup form (n)", actions.new_backup)
        yield (
            "Refresh",
            "read the job store and list every destination again (R)",
            actions.refresh,
        )
        yield ("Freeze display", "stop or restart updating the screen (Z)", actions.freeze)
        for job in state.newest_first()[:JOBS_OFFERED]:
            what = f"{job.kind} {job.server or ''} ({job.state.value})"
            yield (f"Open job {job.id}: {what}", job.description, partial(actions.open_job, job))
            if state.read_only:
                continue
            if job.state in (JobState.RUNNING, JobState.PENDING):
                yield (f"Pause job {job.id}: {what}", "", partial(actions.pause_job, job))
            if job.state in (JobState.PAUSED, JobState.PAUSE_REQUESTED):
                yield (f"Resume job {job.id}: {what}", "", partial(actions.resume_job, job))
            if not job.final and job.state is not JobState.CANCEL_REQUESTED:
                yield (
                    f"Cancel job {job.id}: {what}",
                    "asks first",
                    partial(actions.cancel_job, job),
                )
        yield from self._backup_commands(state, actions)

    def _backup_commands(self, state: ConsoleState, actions: ConsoleActions) -> Iterator[Command]:
        for view in state.destinations.values():
            for server in view.servers:
                for ref in server_refs(view, server)[:BACKUPS_PER_SERVER]:
                    kind = "logical backup" if ref.logical is not None else "backup"
                    what = f"{kind} {ref.info.backup_id} of {server.name} ({ref.info.status})"
                    yield (f"Show {what}", view.label, partial(actions.open_backup, ref))
                    if unlock_allowed(state, ref):  # reading, not changing: read-only too
                        yield (
                            f"Unlock {what}",
                            "asks for its server's key",
                            partial(actions.unlock, ref),
                        )
                    if state.read_only:
                        continue
                    if backup_action_allowed("restore", ref):
                        yield (
                            f"Restore {what}",
                            "opens the restore form",
                            partial(actions.restore_backup, ref),
                        )
                    if backup_action_allowed("verify", ref):
                        yield (f"Verify {what}", "asks first", partial(actions.verify_backup, ref))
                    if backup_action_allowed("delete", ref):
                        yield (f"Delete {what}", "asks first", partial(actions.delete_backup, ref))

    async def discover(self) -> Hits:
        for title, help_text, callback in list(self._commands())[:10]:
            yield DiscoveryHit(title, callback, help=help_text or None)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text or None)
