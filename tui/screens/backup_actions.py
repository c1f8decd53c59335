"""What can be done to the backup a screen shows (the catalog's selected one, a backup's own
screen): the keys, when each applies, and the request each makes of the app."""

from __future__ import annotations

from typing import Any, Protocol

from rich.text import Text
from textual.binding import Binding
from textual.message import Message

from core.catalog.backup_info import DONE
from tui.adapter import BackupRef
from tui.messages import (
    BackupRequest,
    DeleteBackup,
    RestoreBackup,
    UnlockBackup,
    VerifyBackup,
    ask_now,
)
from tui.state import ConsoleState

#: what can be done to the selected backup (hidden with --read-only: tui.config.MUTATING)
#: `r` and `u` open a form: priority keys (as `n`), so that the form opens as the App reads
#: the key and what is typed after it in the same read goes to the form's first field, not
#: to the table behind it (ConsoleScreen.check_action leaves them to a focused input)
BACKUP_ACTIONS = (
    Binding("r", "restore", "Restore", id="backup.restore", priority=True),
    Binding("v", "verify", "Verify", id="backup.verify"),
    Binding("D", "delete", "Delete", id="backup.delete"),
)
#: an encrypted backup's server key, asked for here (not hidden with --read-only: reading
#: contents needs it too)
UNLOCK = Binding("u", "unlock", "Unlock", id="backup.unlock", priority=True)


def backup_action_allowed(action: str, ref: BackupRef | None) -> bool:
    """Restore and verify a DONE backup (a logical one is restored, not verified); delete any
    (core refuses one still running)."""
    if action == "verify" and ref is not None and ref.logical is not None:
        return False
    if action in ("restore", "verify"):
        return ref is not None and ref.info.status == DONE
    if action == "delete":
        return ref is not None
    return True


class _ShowsABackup(Protocol):
    def current_backup(self) -> BackupRef | None: ...
    @property
    def app(self) -> Any: ...
    def post_message(self, message: Message) -> bool: ...


def _ask(screen: _ShowsABackup, request: type[BackupRequest]) -> None:
    ref = screen.current_backup()
    if ref is not None:
        ask_now(screen, request(ref))


class BackupActions:
    """The BACKUP_ACTIONS keys of a screen that shows one backup at a time (`current_backup`)."""

    def action_restore(self: _ShowsABackup) -> None:
        _ask(self, RestoreBackup)

    def action_verify(self: _ShowsABackup) -> None:
        _ask(self, VerifyBackup)

    def action_delete(self: _ShowsABackup) -> None:
        _ask(self, DeleteBackup)

    def action_unlock(self: _ShowsABackup) -> None:
        _ask(self, UnlockBackup)


def unlock_allowed(state: ConsoleState, ref: BackupRef | None) -> bool:
    """u: on an encrypted backup nothing in this console opens yet."""
    return ref is not None and state.locked(ref)


def encryption_note(state: ConsoleState, ref: BackupRef) -> Text | None:
    """Whether the backup is encrypted and what here opens it (None: not encrypted)."""
    if not ref.encrypted:
        return None
    if state.unlocked(ref):
        return Text("encrypted (age): unlocked in this console", style="magenta")
    if state.locked(ref):
        return Text("encrypted (age): locked; u unlocks it", style="bold magenta")
    return Text("encrypted (age): opened with the key the console started with", style="magenta")
